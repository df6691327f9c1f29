"""Flask extensions, created unbound and initialised by ``create_app``."""

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_sqlalchemy.session import Session as FlaskSession
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm.exc import StaleDataError

from lessons.errors import ConcurrentChange

# Stable constraint names so Alembic can alter them later (SQLite batch mode needs names).
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Session(FlaskSession):
    """Turns a version-checked UPDATE that matched no row into the domain's
    ``ConcurrentChange``, wherever the flush happens (an explicit flush, autoflush or
    commit), so every write path refuses a lost update the same way. The transaction is
    rolled back at once, so the caller can go on reading (a conflict page shows what the
    other writer saved)."""

    _committing = False

    def flush(self, objects=None) -> None:  # noqa: ANN001 - SQLAlchemy's signature
        try:
            super().flush(objects)
        except StaleDataError as exc:
            if not self._committing:  # inside commit, the rollback waits for it to unwind
                self.rollback()
            raise ConcurrentChange() from exc

    def commit(self) -> None:
        self._committing = True
        try:
            super().commit()
        except ConcurrentChange:
            self.rollback()
            raise
        finally:
            self._committing = False


# Objects keep what this transaction wrote after its commit, rather than reloading on
# next access: an answer built after the commit describes the version this request saved,
# never a newer one another request committed in between.
db = SQLAlchemy(model_class=Base, session_options={"class_": Session,
                                                   "expire_on_commit": False})
migrate = Migrate(render_as_batch=True, compare_type=True)
login_manager = LoginManager()
csrf = CSRFProtect()
