"""WTForms classes: field parsing and format checks only. The rules live in ``lessons.rules``
and are applied by the services; views copy their messages back onto these fields."""
