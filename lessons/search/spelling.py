"""British/Commonwealth spellings folded onto one (American) form, for indexing and queries.

Coalition partners write the same lesson in two spellings: a British "defence of the
manoeuvre centre" must be found by an American searching "defense maneuver center", and
the other way round. The Porter stemmer does not do this ("defence" -> "defenc",
"defense" -> "defens"), so ``SpellingStemFilter`` rewrites each lower-cased token to one
canonical spelling *before* stemming, on both the indexing and the query side.

American is the canonical side only because it is the shorter, more regular form; nothing
shown to users changes (snippets are cut from the stored text, not from tokens).

The data is deliberately explicit: a dictionary of word pairs (``SPELLING_PAIRS``), a
rule for the -ise/-ize family guarded by an exception list (so "exercise" never becomes
"exercize"), a few prefixes for Greek medical words (haem-, paed-, ...), and listed roots
for compounds no dictionary can enumerate (multicoloured, nanometres, snowplough). There is
no blanket -our -> -or rule, because "four", "hour", "tour" and "contour" are not spelling
variants. The rules were checked against the Debian American and British word lists: no
American-only word is changed by them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import lru_cache

from whoosh.analysis import Filter, Token
from whoosh.lang.porter import stem

# --------------------------------------------------------------------------------------
# The dictionary. Written as families (a root and the endings it really takes) so each
# inflection is listed once and the pairs stay readable; every generated pair is a real
# word in both spellings.


def _family(british: str, american: str, *endings: str) -> list[tuple[str, str]]:
    """Pairs that share their endings: ("armour", "armor", "", "s") -> armour(s)/armor(s)."""
    return [(british + ending, american + ending) for ending in endings]


def _re_er(british_stem: str, american_stem: str, verb: bool = False,
           plural: bool = True) -> list[tuple[str, str]]:
    """-re/-er words: centre(s) -> center(s), and for verbs centred/centring too."""
    pairs = [(british_stem + "re", american_stem + "er")]
    if plural:
        pairs.append((british_stem + "res", american_stem + "ers"))
    if verb:
        pairs += [(british_stem + "red", american_stem + "ered"),
                  (british_stem + "ring", american_stem + "ering")]
    return pairs


def _double_l(root: str, *endings: str) -> list[tuple[str, str]]:
    """British doubles a final l before a suffix (travelled); American does not (traveled).

    ``endings`` are the American endings the root takes ("ed", "ing", "er", "ers", ...).
    """
    return [(root + "l" + ending, root + ending) for ending in endings]


_OUR_OR = [
    *_family("armour", "armor", "", "s", "ed", "er", "ers", "ing", "y"),
    ("armouries", "armories"),
    *_family("arbour", "arbor", "", "s"),
    *_family("ardour", "ardor", ""),
    *_family("behaviour", "behavior", "", "s", "al", "ally", "ism", "ist"),
    *_family("candour", "candor", ""),
    *_family("clamour", "clamor", "", "s", "ed", "ing"),
    *_family("colour", "color", "", "s", "ed", "ing", "ful", "less", "ation", "ant",
             "ants"),
    # Mixed forms: the -our root with either ending.
    ("colourise", "colorize"), ("colourised", "colorized"), ("colourising", "colorizing"),
    ("colourize", "colorize"), ("colourized", "colorized"), ("colourizing", "colorizing"),
    *_family("demeanour", "demeanor", "", "s"),
    *_family("discolour", "discolor", "", "s", "ed", "ation"),
    *_family("endeavour", "endeavor", "", "s", "ed", "ing"),
    *_family("favour", "favor", "", "s", "ed", "ing", "able", "ably", "ite", "ites",
             "itism"),
    *_family("unfavour", "unfavor", "able", "ably"),
    *_family("fervour", "fervor", ""),
    *_family("flavour", "flavor", "", "s", "ed", "ing", "ings", "ful", "less"),
    *_family("harbour", "harbor", "", "s", "ed", "ing"),
    *_family("honour", "honor", "", "s", "ed", "ing", "able", "ably"),
    *_family("dishonour", "dishonor", "", "s", "ed", "able", "ably"),
    *_family("humour", "humor", "", "s", "ed", "ing", "less"),
    *_family("labour", "labor", "", "s", "ed", "ing", "er", "ers"),
    *_family("neighbour", "neighbor", "", "s", "ing", "hood", "hoods", "ly"),
    *_family("odour", "odor", "", "s", "less"),
    *_family("parlour", "parlor", "", "s"),
    *_family("rancour", "rancor", ""),
    *_family("rigour", "rigor", "", "s"),
    *_family("rumour", "rumor", "", "s", "ed"),
    *_family("saviour", "savior", "", "s"),
    *_family("savour", "savor", "", "s", "ed", "ing", "y"),
    *_family("splendour", "splendor", "", "s"),
    *_family("succour", "succor", ""),
    *_family("tumour", "tumor", "", "s"),
    *_family("valour", "valor", ""),
    *_family("vapour", "vapor", "", "s"),
    *_family("vigour", "vigor", ""),
]

_RE_ER = [
    *_re_er("cent", "cent", verb=True),
    ("centreline", "centerline"), ("centrelines", "centerlines"),
    *_family("centrepiece", "centerpiece", "", "s"),
    *_family("centrefold", "centerfold", "", "s"),
    *_re_er("epicent", "epicent"),
    *_re_er("met", "met"),
    *_re_er("kilomet", "kilomet"),
    *_re_er("centimet", "centimet"),
    *_re_er("millimet", "millimet"),
    *_re_er("lit", "lit"),
    *_re_er("millilit", "millilit"),
    *_re_er("calib", "calib"),
    *_re_er("theat", "theat"),
    *_re_er("fib", "fib"),
    ("fibreglass", "fiberglass"), ("fibreoptic", "fiberoptic"),
    *_re_er("sab", "sab"),
    *_re_er("somb", "somb", plural=False),
    *_re_er("spect", "spect"),
    *_re_er("lust", "lust"),
    *_re_er("meag", "meag", plural=False),
    *_re_er("louv", "louv"),
    ("louvred", "louvered"),
    *_re_er("manoeuv", "maneuv", verb=True),
    ("manoeuvrable", "maneuverable"), ("manoeuvrability", "maneuverability"),
    ("manoeuvrer", "maneuverer"), ("manoeuvrers", "maneuverers"),
    ("outmanoeuvre", "outmaneuver"), ("outmanoeuvred", "outmaneuvered"),
    ("outmanoeuvres", "outmaneuvers"), ("outmanoeuvring", "outmaneuvering"),
    *_re_er("reconnoit", "reconnoit", verb=True),
]

_DOUBLE_L = [
    *_double_l("travel", "ed", "ing", "er", "ers"),
    *_double_l("cancel", "ed", "ing"),
    *_double_l("label", "ed", "ing"),
    *_double_l("model", "ed", "ing", "er", "ers"),
    *_double_l("fuel", "ed", "ing"),
    *_double_l("refuel", "ed", "ing", "er", "ers"),
    *_double_l("defuel", "ed", "ing"),
    *_double_l("signal", "ed", "ing", "er", "ers"),
    *_double_l("channel", "ed", "ing"),
    *_double_l("level", "ed", "ing", "er", "ers"),
    *_double_l("total", "ed", "ing"),
    *_double_l("marshal", "ed", "ing", "er", "ers"),
    *_double_l("counsel", "ed", "ing", "or", "ors"),
    *_double_l("dial", "ed", "ing"),
    *_double_l("equal", "ed", "ing"),
    *_double_l("funnel", "ed", "ing"),
    *_double_l("initial", "ed", "ing"),
    *_double_l("jewel", "ed", "er", "ers"),
    *_double_l("libel", "ed", "ing", "ous"),
    *_double_l("marvel", "ed", "ing", "ous"),
    *_double_l("panel", "ed", "ing", "ist", "ists"),
    *_double_l("pencil", "ed", "ing"),
    *_double_l("quarrel", "ed", "ing"),
    *_double_l("rival", "ed", "ing"),
    *_double_l("shovel", "ed", "ing"),
    *_double_l("snorkel", "ed", "ing"),
    *_double_l("stencil", "ed", "ing"),
    *_double_l("swivel", "ed", "ing"),
    *_double_l("tunnel", "ed", "ing", "er", "ers"),
    *_double_l("unravel", "ed", "ing"),
    *_double_l("bevel", "ed", "ing"),
    *_double_l("chisel", "ed", "ing"),
    *_double_l("spiral", "ed", "ing"),
    *_double_l("pedal", "ed", "ing"),
    *_double_l("towel", "ing"),
    *_double_l("grovel", "ed", "ing"),
    *_double_l("shrivel", "ed", "ing"),
    *_double_l("medal", "ist", "ists"),
    *_double_l("council", "or", "ors"),
    ("dishevelled", "disheveled"),
    ("woollen", "woolen"), ("woollens", "woolens"),
]

# British single l where American doubles it (fulfil/fulfill), and -ment forms.
_SINGLE_L = [
    ("fulfil", "fulfill"), ("fulfils", "fulfills"),
    ("fulfilment", "fulfillment"), ("fulfilments", "fulfillments"),
    ("enrol", "enroll"), ("enrols", "enrolls"),
    ("enrolment", "enrollment"), ("enrolments", "enrollments"),
    ("instal", "install"), ("instals", "installs"),
    ("instalment", "installment"), ("instalments", "installments"),
    ("distil", "distill"), ("distils", "distills"),
    ("instil", "instill"), ("instils", "instills"),
    ("appal", "appall"), ("appals", "appalls"),
    ("enthral", "enthrall"), ("enthrals", "enthralls"),
    ("skilful", "skillful"), ("skilfully", "skillfully"),
    ("unskilful", "unskillful"),
    ("wilful", "willful"), ("wilfully", "willfully"),
]

_ENCE_ENSE = [
    *_family("defenc", "defens", "e", "es", "eless"),
    *_family("offenc", "offens", "e", "es"),
    *_family("licenc", "licens", "e", "es", "ed"),
    *_family("pretenc", "pretens", "e", "es"),
    # British verb "practise" (noun "practice" is the same in both).
    *_family("practis", "practic", "e", "ed", "es", "ing"),
]

_YSE_YZE = [
    *_family("analys", "analyz", "e", "ed", "es", "ing", "er", "ers"),
    *_family("reanalys", "reanalyz", "e", "ed", "es", "ing"),
    *_family("paralys", "paralyz", "e", "ed", "es", "ing"),
    *_family("catalys", "catalyz", "e", "ed", "es", "ing"),
    *_family("dialys", "dialyz", "e", "ed", "ing"),
    *_family("electrolys", "electrolyz", "e", "ed", "ing"),
    *_family("hydrolys", "hydrolyz", "e", "ed", "ing"),
    *_family("breathalys", "breathalyz", "e", "ed", "er", "ers"),
]

_OGUE_OG = [
    ("catalogue", "catalog"), ("catalogues", "catalogs"),
    ("catalogued", "cataloged"), ("cataloguing", "cataloging"),
    ("cataloguer", "cataloger"), ("cataloguers", "catalogers"),
    ("analogue", "analog"), ("analogues", "analogs"),
    ("dialogue", "dialog"), ("dialogues", "dialogs"),
]

# Greek-derived ae/oe words, mostly medical (the casualty chain is a lessons staple).
# Prefix rules below catch forms not listed here.
_AE_OE = [
    *_family("paediatric", "pediatric", "", "s"),
    *_family("paediatrician", "pediatrician", "", "s"),
    *_family("orthopaedic", "orthopedic", "", "s"),
    *_family("orthopaedist", "orthopedist", "", "s"),
    *_family("haemorrhag", "hemorrhag", "e", "es", "ed", "ing", "ic"),
    *_family("haemoglobin", "hemoglobin", ""),
    *_family("haematoma", "hematoma", "", "s"),
    *_family("haematology", "hematology", ""),
    *_family("haemostatic", "hemostatic", "", "s"),
    *_family("haemostasis", "hemostasis", ""),
    *_family("haemothorax", "hemothorax", ""),
    *_family("haemodynamic", "hemodynamic", "", "s"),
    *_family("haemophilia", "hemophilia", ""),
    *_family("anaesthetic", "anesthetic", "", "s"),
    *_family("anaesthesia", "anesthesia", ""),
    *_family("anaesthetist", "anesthetist", "", "s"),
    *_family("anaesthetis", "anesthetiz", "e", "ed", "es", "ing"),
    *_family("oedema", "edema", ""),
    *_family("diarrhoea", "diarrhea", ""),
    *_family("foetus", "fetus", "", "es"),
    *_family("foetal", "fetal", ""),
    *_family("oesophag", "esophag", "us", "eal"),
    *_family("oestrogen", "estrogen", ""),
    *_family("gynaecolog", "gynecolog", "y", "ist", "ists", "ical"),
    *_family("leukaemia", "leukemia", ""),
    *_family("anaemi", "anemi", "a", "c"),
    *_family("septicaemia", "septicemia", ""),
    *_family("ischaemi", "ischemi", "a", "c"),
    *_family("hypoglycaemi", "hypoglycemi", "a", "c"),
    *_family("hypoxaemi", "hypoxemi", "a", "c"),
    *_family("aetiolog", "etiolog", "y", "ical"),
    *_family("encyclopaedi", "encyclopedi", "a", "as", "c"),
    ("mediaeval", "medieval"),
    *_family("caesarean", "cesarean", "", "s"),
    *_family("aeroplane", "airplane", "", "s"),
]

_E_DROPPED = [
    ("ageing", "aging"),
    *_family("judgement", "judgment", "", "s", "al"),
    *_family("acknowledgement", "acknowledgment", "", "s"),
    *_family("lodgement", "lodgment", "", "s"),
    *_family("abridgement", "abridgment", "", "s"),
    ("routeing", "routing"),
    ("likeable", "likable"),
    ("sizeable", "sizable"),
    ("saleable", "salable"),
    ("unshakeable", "unshakable"),
]

_OTHER = [
    *_family("grey", "gray", "", "s", "ed", "ing", "er", "est", "ish", "ness"),
    *_family("tyre", "tire", "", "s"),
    *_family("kerb", "curb", "", "s", "side", "stone", "stones"),
    *_family("cheque", "check", "", "s"),
    *_family("chequebook", "checkbook", "", "s"),
    *_family("draught", "draft", "", "s", "y", "sman", "smen"),
    *_family("plough", "plow", "", "s", "ed", "ing"),
    *_family("sceptic", "skeptic", "", "s", "al", "ally", "ism"),
    *_family("mould", "mold", "", "s", "ed", "ing", "y"),
    *_family("moult", "molt", "", "s", "ed", "ing"),
    *_family("smoulder", "smolder", "", "s", "ed", "ing"),
    ("aluminium", "aluminum"),
    *_family("sulph", "sulf", "ur", "uric", "ate", "ates", "ide", "ides"),
    ("storey", "story"), ("storeys", "stories"),
    ("pyjamas", "pajamas"),
    ("jewellery", "jewelry"),
    *_family("artefact", "artifact", "", "s"),
    ("annexe", "annex"),  # the plural "annexes" is the same in both
    ("axe", "ax"),
    *_family("cypher", "cipher", "", "s", "ed", "ing"),
    *_family("disc", "disk", "", "s"),
    *_family("desp", "disp", "atch", "atched", "atches", "atching", "atcher", "atchers"),
    *_family("enqu", "inqu", "ire", "ired", "ires", "iring", "iry", "iries", "irer"),
    *_family("dependant", "dependent", "", "s"),
    ("learnt", "learned"), ("unlearnt", "unlearned"),
    ("spelt", "spelled"), ("burnt", "burned"), ("dreamt", "dreamed"),
    ("spoilt", "spoiled"), ("leant", "leaned"),
    *_family("programme", "program", "", "s"),
    *_family("gramme", "gram", "", "s"),
    *_family("kilogramme", "kilogram", "", "s"),
    *_family("speciality", "specialty", ""),
    ("specialities", "specialties"),
    *_family("gaol", "jail", "", "s", "ed", "ing", "er", "ers"),
    *_family("waggon", "wagon", "", "s"),
    # Both spellings are used on both sides of the Atlantic; folded so titles such as
    # "political adviser" and "political advisor" match.
    ("adviser", "advisor"), ("advisers", "advisors"),
    *_family("pyjama", "pajama", ""),
    ("trialled", "trialed"), ("trialling", "trialing"),
    ("unlabelled", "unlabeled"),
    ("queueing", "queuing"),
    ("maths", "math"),
    *_family("aerofoil", "airfoil", "", "s"),
    ("caesium", "cesium"),
    ("carburettor", "carburetor"), ("carburettors", "carburetors"),
    ("carburetter", "carburetor"), ("carburetters", "carburetors"),
    *_family("baulk", "balk", "", "s", "ed", "ing"),
    *_family("behove", "behoove", "", "s", "d"),
    *_family("chequer", "checker", "", "s", "ed", "ing", "board", "boards"),
    *_family("kerb", "curb", "ed", "ing"),
    *_family("psychoanalys", "psychoanalyz", "e", "ed", "es", "ing"),
    *_family("reprogramme", "reprogram", "", "s"),
    *_family("milligramme", "milligram", "", "s"),
    *_family("prejudgement", "prejudgment", "", "s"),
    *_family("manoeuvrist", "maneuverist", "", "s"),
    ("lacklustre", "lackluster"),
    *_family("sceptre", "scepter", "", "s"),
    *_family("fibreboard", "fiberboard", "", "s"),
]

# Words ending -ise that are spelled -ise everywhere. Inflected forms (exercised, revises,
# supervising, promising ...) are found through their base form, and prefixed forms
# (unsupervised, overexercise, uncompromising) by stripping the prefixes below.
ISE_EXCEPTIONS: frozenset[str] = frozenset("""
    advertise advise anise appraise apprise arise braise bruise chastise chemise cerise
    circumcise comprise compromise concise cruise demise despise devise disguise
    enfranchise enterprise excise exercise exorcise expertise franchise guise improvise
    incise likewise marquise merchandise moonrise mortise noise otherwise paradise poise
    porpoise praise precise premise prise promise raise remise reprise revise rise
    sunrise supervise surmise surprise televise tortoise treatise turquoise uprise valise
    vise wise clockwise anticlockwise counterclockwise imprecise fundraise louise denise
    elise eloise
""".split())

# Endings no -ize verb has: likewise, praise, noise, enterprise, franchise...
# ("-cise", "-vise" and "-uise" are not among them: criticise, collectivise and soliloquise
# are -ize verbs, so precise, revise and cruise are in the list above instead.)
_ISE_EXCEPTION_ENDINGS: tuple[str, ...] = ("wise", "aise", "oise", "prise", "chise")

# Prefixes stripped only to find an exception: "unsupervised" is "supervise" inflected.
_EXCEPTION_PREFIXES: tuple[str, ...] = ("counter", "under", "super", "over", "self", "well",
                                        "post", "pre", "mis", "non", "out", "sub", "ill",
                                        "dis", "un", "re", "in", "im")

# Nouns in -is whose plural (and, for a few, verb forms) end like -ise inflections:
# "trellises", "trellised" and "verdigrised" are not -ize words.
_IS_NOUNS: frozenset[str] = frozenset("""
    amaryllis axis cannabis chrysalis clematis clitoris crisis epidermis epiglottis finis
    glottis ibis iris mantis marquis megalopolis metropolis necropolis pelvis penis
    portcullis praxis precis précis proboscis pubis syphilis tennis trellis verdigris
""".split())

# Other words that only look like -ise inflections.
_NOT_ISE_WORDS: frozenset[str] = frozenset({"nuisance", "nuisances", "obeisance",
                                            "obeisances", "obeisant"})

# British suffix -> American suffix, longest first so "isations" wins over "ise".
_ISE_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("isationally", "izationally"),
    ("isational", "izational"),
    ("isations", "izations"),
    ("isation", "ization"),
    ("isements", "izements"),
    ("isement", "izement"),
    ("isingly", "izingly"),
    ("isedly", "izedly"),
    ("isably", "izably"),
    ("isable", "izable"),
    ("isance", "izance"),
    ("isant", "izant"),
    ("isers", "izers"),
    ("ising", "izing"),
    ("iser", "izer"),
    ("ised", "ized"),
    ("ises", "izes"),
    ("ise", "ize"),
)

# Greek-derived British prefixes/suffixes with no other reading in English: any word that
# starts "haem" or "paed" is a British spelling of a hem-/ped- word.
_CLASSICAL_PREFIXES: tuple[tuple[str, str], ...] = (
    ("orthopaed", "orthoped"),
    ("anaesth", "anesth"),
    ("oesoph", "esoph"),
    ("gynaec", "gynec"),
    ("palaeo", "paleo"),
    ("aetiol", "etiol"),
    ("oedem", "edem"),
    ("oestr", "estr"),
    ("haem", "hem"),
    ("paed", "ped"),
    ("foet", "fet"),
)
_CLASSICAL_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("rrhoeal", "rrheal"),
    ("rrhoea", "rrhea"),
    ("aemias", "emias"),
    ("aemia", "emia"),
    ("aemic", "emic"),
)

# -our roots replaced wherever they occur in a word, for compounds the dictionary cannot
# list (multicoloured, watercolours, misdemeanour, neighbourliness). Roots, not an -our
# ending: "four", "hour", "tour", "contour" and "devour" contain none of them.
OUR_ROOTS: dict[str, str] = {root: root[:-2] + "r" for root in """
    behaviour demeanour endeavour splendour
    armour ardour candour clamour clangour colour enamour favour fervour flavour harbour
    honour humour labour neighbour odour parlour rancour rigour rumour saviour savour
    succour tumour valour vapour vigour
""".split()}

# Whole-word endings for metric units and centres after any prefix (nanometre, hectolitre).
_RE_ENDINGS: tuple[tuple[str, str], ...] = (
    ("metres", "meters"), ("metre", "meter"),
    ("litres", "liters"), ("litre", "liter"),
    ("centres", "centers"), ("centre", "center"),
)

# Roots that are British wherever they occur (snowplough, updraughts, mouldering).
_OTHER_ROOTS: dict[str, str] = {"plough": "plow", "draught": "draft", "mould": "mold"}

SPELLING_PAIRS: list[tuple[str, str]] = [
    *_OUR_OR, *_RE_ER, *_DOUBLE_L, *_SINGLE_L, *_ENCE_ENSE, *_YSE_YZE, *_OGUE_OG,
    *_AE_OE, *_E_DROPPED, *_OTHER,
]

BRITISH_TO_AMERICAN: dict[str, str] = dict(SPELLING_PAIRS)


def _is_ise_exception(base: str) -> bool:
    """True when ``base`` (an -ise word) keeps -ise in American English too."""
    if base in ISE_EXCEPTIONS or base.endswith(_ISE_EXCEPTION_ENDINGS):
        return True
    return any(base.startswith(prefix) and base[len(prefix):] in ISE_EXCEPTIONS
               for prefix in _EXCEPTION_PREFIXES)


def _ize(word: str) -> str:
    """organisation -> organization, exercised -> exercised (an exception)."""
    if word in _NOT_ISE_WORDS:
        return word
    for british, american in _ISE_SUFFIXES:
        if word.endswith(british):
            stem = word[: -len(british)]
            # Short stems are whole words (rise, wise, noise, raised), not verbs + -ise.
            if len(stem) < 3 or _is_ise_exception(stem + "ise"):
                return word
            if british in ("ises", "ised", "ising") and stem + "is" in _IS_NOUNS:
                return word
            return stem + american
    return word


def _roots(word: str) -> str:
    """multicoloured -> multicolored, nanometres -> nanometers, snowplough -> snowplow."""
    if "our" in word:
        for british, american in OUR_ROOTS.items():
            if british in word:
                word = word.replace(british, american)
    for british, american in _OTHER_ROOTS.items():
        if british in word:
            word = word.replace(british, american)
    for british, american in _RE_ENDINGS:
        if word.endswith(british):
            return word[: -len(british)] + american
    return word


def _classical(word: str) -> str:
    """haemostatic -> hemostatic, ischaemic -> ischemic, for forms the dictionary lacks."""
    for british, american in _CLASSICAL_PREFIXES:
        if word.startswith(british):
            word = american + word[len(british):]
            break
    for british, american in _CLASSICAL_SUFFIXES:
        if word.endswith(british):
            return word[: -len(british)] + american
    return word


@lru_cache(maxsize=65536)
def canonical(word: str) -> str:
    """The American spelling of a lower-case ``word``; other words come back unchanged.

    Expects lower case (it sits after ``LowercaseFilter``): capitalised words are left as
    they are rather than guessed at. Idempotent, so applying it twice (say, to a glossary
    term and then to the query built from it) is harmless.
    """
    mapped = BRITISH_TO_AMERICAN.get(word)
    if mapped is not None:
        return mapped
    return _ize(_roots(_classical(word)))


@lru_cache(maxsize=200_000)
def fold_and_stem(word: str) -> str:
    """One spelling for British and American forms, then Porter's stem (the index's
    terms: "defence" and "defense" both become "defens")."""
    return stem(canonical(word))


class SpellingStemFilter(Filter):
    """Rewrites each token to the stem of its canonical spelling; positions and
    characters stay.

    Folding and stemming in one pass with one cache: analysis is a third of indexing
    time, and most of it is per-token overhead. Place it after ``LowercaseFilter`` and
    ``StopFilter`` (no stop word has a second spelling). ``is_morph`` is set so that
    analysers asked for ``no_morph`` see the words as written, as with Whoosh's stemmer.
    """

    is_morph = True

    def __call__(self, tokens: Iterable[Token]) -> Iterator[Token]:
        for token in tokens:
            if not token.stopped:
                token.text = fold_and_stem(token.text)
            yield token
