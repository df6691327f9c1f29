"""Coalition vocabulary: British/American spelling folding and the glossary of equivalents.

The spelling tests run every dictionary pair through a real Whoosh chain, because what
matters is that both spellings end up as the same indexed term after stemming, not just
that ``canonical`` returns a particular string.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from whoosh.analysis import LowercaseFilter, RegexTokenizer, StopFilter

from lessons.search.glossary import (
    MAX_GROUP_TERMS,
    MAX_GROUPS,
    Glossary,
    load_default_entries,
    load_default_groups,
    stemmed,
    tokenize,
    validate_groups,
)
from lessons.search.schema import text_analyzer
from lessons.search.spelling import SPELLING_PAIRS, SpellingStemFilter, canonical

# The index's own analyzer: what matters is the term both spellings are indexed as.
ANALYZER = text_analyzer()


def analyze(text: str) -> list[str]:
    return [token.text for token in ANALYZER(text)]


# --- canonical() ---------------------------------------------------------------------

@pytest.mark.parametrize(("british", "american"), [
    ("defence", "defense"), ("defences", "defenses"), ("offence", "offense"),
    ("licence", "license"), ("practise", "practice"), ("practising", "practicing"),
    ("manoeuvre", "maneuver"), ("manoeuvres", "maneuvers"), ("manoeuvred", "maneuvered"),
    ("manoeuvring", "maneuvering"), ("programme", "program"), ("centre", "center"),
    ("centres", "centers"), ("metre", "meter"), ("kilometres", "kilometers"),
    ("calibre", "caliber"), ("litre", "liter"), ("theatre", "theater"),
    ("armour", "armor"), ("armoured", "armored"), ("colour", "color"),
    ("honour", "honor"), ("labour", "labor"), ("harbour", "harbor"), ("favour", "favor"),
    ("behaviour", "behavior"), ("rumour", "rumor"), ("neighbour", "neighbor"),
    ("vapour", "vapor"), ("aluminium", "aluminum"), ("catalogue", "catalog"),
    ("analogue", "analog"), ("dialogue", "dialog"), ("enrol", "enroll"),
    ("enrolment", "enrollment"), ("fulfil", "fulfill"), ("travelled", "traveled"),
    ("travelling", "traveling"), ("traveller", "traveler"), ("cancelled", "canceled"),
    ("labelled", "labeled"), ("modelling", "modeling"), ("fuelled", "fueled"),
    ("refuelling", "refueling"), ("signalling", "signaling"), ("grey", "gray"),
    ("tyre", "tire"), ("kerb", "curb"), ("cheque", "check"), ("draught", "draft"),
    ("plough", "plow"), ("sceptical", "skeptical"), ("judgement", "judgment"),
    ("ageing", "aging"), ("paediatric", "pediatric"), ("haemorrhage", "hemorrhage"),
    ("anaesthetic", "anesthetic"), ("oedema", "edema"), ("orthopaedic", "orthopedic"),
    ("diarrhoea", "diarrhea"), ("foetus", "fetus"), ("oestrogen", "estrogen"),
    ("analyse", "analyze"), ("analysed", "analyzed"), ("paralyse", "paralyze"),
    ("catalyse", "catalyze"), ("learnt", "learned"), ("dependants", "dependents"),
    ("reconnoitre", "reconnoiter"), ("lodgement", "lodgment"), ("despatched", "dispatched"),
])
def test_canonical_maps_british_to_american(british: str, american: str) -> None:
    assert canonical(british) == american
    assert canonical(american) == american


@pytest.mark.parametrize(("british", "american"), [
    ("organise", "organize"), ("organised", "organized"), ("organises", "organizes"),
    ("organising", "organizing"), ("organisation", "organization"),
    ("organisations", "organizations"), ("organisational", "organizational"),
    ("organiser", "organizer"), ("reorganisation", "reorganization"),
    ("disorganised", "disorganized"), ("recognise", "recognize"),
    ("recognisable", "recognizable"), ("mobilisation", "mobilization"),
    ("standardisation", "standardization"), ("prioritised", "prioritized"),
    ("authorisation", "authorization"), ("synchronise", "synchronize"),
    ("categorise", "categorize"), ("criticise", "criticize"), ("publicised", "publicized"),
    ("apologise", "apologize"), ("stabilisation", "stabilization"),
    ("anaesthetised", "anesthetized"), ("haemostatic", "hemostatic"),
    ("ischaemic", "ischemic"), ("multicoloured", "multicolored"),
    ("misdemeanour", "misdemeanor"), ("nanometres", "nanometers"),
    ("snowplough", "snowplow"),
])
def test_rules_cover_words_the_dictionary_does_not_list(british: str, american: str) -> None:
    assert canonical(british) == american


@pytest.mark.parametrize("word", [
    # -ise in both spellings, with their inflections and prefixed forms.
    "exercise", "exercises", "exercised", "exercising", "exerciser", "overexercised",
    "supervise", "supervised", "supervising", "unsupervised", "supervisor",
    "promise", "promised", "promising", "compromise", "uncompromising",
    "advise", "advisable", "inadvisable", "revise", "revised", "devise", "improvise",
    "televised", "advertise", "advertising", "comprise", "surprise", "surprisingly",
    "enterprise", "despise", "disguise", "chastise", "circumcise", "excise", "precise",
    "concise", "premise", "premises", "demise", "surmise", "franchise", "merchandise",
    "expertise", "treatise", "paradise", "otherwise", "likewise", "clockwise", "wise",
    "rise", "arise", "arising", "sunrise", "uprising", "raise", "raised", "praise",
    "appraise", "noise", "poise", "cruise", "cruiser", "bruise", "guise", "apprise",
    "reprise", "vise",
    # -is nouns whose plurals end like -ise verbs.
    "crises", "irises", "trellises", "pelvises",
    # -our words that are not British spellings.
    "four", "hour", "your", "tour", "pour", "flour", "contour", "detour", "devour",
    "journey", "course", "source", "courage",
    # Already American, or the same in both.
    "defense", "program", "programmed", "programming", "center", "maneuver", "practice",
    "cancellation", "controlled", "patrolled", "size", "seize", "prize",
])
def test_words_that_must_not_change(word: str) -> None:
    assert canonical(word) == word


def test_spelling_pairs_are_consistent() -> None:
    british_side = [british for british, _ in SPELLING_PAIRS]
    assert len(british_side) == len(set(british_side))
    assert len(SPELLING_PAIRS) >= 300
    for british, american in SPELLING_PAIRS:
        assert british != american
        assert british == british.lower() and american == american.lower()
        assert canonical(american) == american, f"{american} is not canonical"


# --- SpellingStemFilter in an analyzer chain ------------------------------------------------

@pytest.mark.parametrize(("british", "american"), SPELLING_PAIRS,
                         ids=[british for british, _ in SPELLING_PAIRS])
def test_both_spellings_index_as_the_same_stem(british: str, american: str) -> None:
    assert analyze(british) == analyze(american)


def test_refuelling_refueling_and_refuel_share_a_stem() -> None:
    assert analyze("refuelling") == analyze("refueling") == analyze("refuel") == ["refuel"]


def test_exercise_is_never_spelled_exercize() -> None:
    assert analyze("exercise exercised exercising exercises") == ["exercis"] * 4


@pytest.mark.parametrize(("british", "american"), [
    ("The Ministry of Defence organised the manoeuvre centre",
     "the ministry of defense organized the maneuver center"),
    ("Armoured vehicles travelled to the refuelling point",
     "armored vehicles traveled to the refueling point"),
    ("Lessons learnt: paediatric haemorrhage control",
     "Lessons learned: pediatric hemorrhage control"),
])
def test_sentences_analyze_alike(british: str, american: str) -> None:
    assert analyze(british) == analyze(american)


def test_filter_keeps_positions_and_characters_in_query_mode() -> None:
    text = "Defence of the centre"
    tokens = [(t.text, t.pos, t.startchar, t.endchar)
              for t in ANALYZER(text, positions=True, chars=True, mode="query")]
    assert tokens == [("defens", 0, 0, 7), ("center", 1, 15, 21)]  # StopFilter renumbers
    for word, _, start, end in tokens:
        assert text[start:end].lower() in {"defence", "centre"}, word


def test_filter_skips_stopped_tokens() -> None:
    # A stopped token is kept only for its position; rewriting it would be wasted work.
    chain = (RegexTokenizer() | LowercaseFilter() | StopFilter(stoplist=["centre"])
             | SpellingStemFilter())
    tokens = [(t.text, t.stopped) for t in chain("centre defence", removestops=False)]
    assert tokens == [("centre", True), ("defens", False)]


def test_filter_survives_pickling_with_the_schema() -> None:
    # Whoosh pickles the schema, analyzers included, into the index's table of contents.
    restored = pickle.loads(pickle.dumps(ANALYZER))
    assert restored == ANALYZER
    assert [t.text for t in restored("manoeuvring")] == analyze("maneuvering")


# --- the default glossary ---------------------------------------------------------------

def test_default_glossary_is_large_and_valid() -> None:
    groups = load_default_groups()
    assert len(groups) >= 70
    assert validate_groups(groups) == []
    assert validate_groups(groups, fold=stemmed) == []
    for group in groups:
        assert 2 <= len(group) <= 6, group
        assert all(term == term.lower().strip() for term in group)


def test_default_glossary_file_is_well_formed() -> None:
    path = Path(__file__).resolve().parents[1] / "lessons" / "search" / "glossary_default.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert all(set(item) == {"terms", "note"} for item in raw)
    assert all(item["note"].strip() for item in raw)
    entries = load_default_entries()
    assert len(entries) == len(raw)
    assert all(entry.note for entry in entries)


@pytest.mark.parametrize("expected", [
    {"lno", "lo", "liaison officer"},
    {"css", "combat service support", "sustainment", "logistics"},
    {"medevac", "casevac", "aeromedical evacuation"},
    {"fvey", "five eyes"},
])
def test_default_glossary_has_the_required_groups(expected: set[str]) -> None:
    assert expected in [set(group) for group in load_default_groups()]


# --- Glossary ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def glossary() -> Glossary:
    return Glossary(load_default_groups())


def test_finds_a_multi_word_term_inside_a_query(glossary: Glossary) -> None:
    found = glossary.find_terms(["the", "liaison", "officer", "was"])
    assert found == [(1, 3, ["lno", "lo"])]


def test_finds_an_acronym(glossary: Glossary) -> None:
    assert glossary.find_terms(["lno"]) == [(0, 1, ["lo", "liaison officer"])]
    assert glossary.expansions("LNO") == ["lo", "liaison officer"]
    assert glossary.expansions("Liaison  Officer") == ["lno", "lo"]


def test_finds_aeromedical_evacuation(glossary: Glossary) -> None:
    found = glossary.find_terms(tokenize("aeromedical evacuation delays"))
    assert found == [(0, 2, ["medevac", "casevac"])]


def test_spelling_variants_match_the_same_term(glossary: Glossary) -> None:
    british = glossary.find_terms(tokenize("forward arming and refuelling point"))
    american = glossary.find_terms(tokenize("forward arming and refueling point"))
    assert british == american == [(0, 5, ["farp"])]
    assert glossary.find_terms(tokenize("defense lines of development"))[0][:2] == (0, 4)
    assert glossary.find_terms(["lessons", "learnt"]) == [(0, 2, ["ll", "lessons identified"])]


def test_punctuated_terms_are_split_into_words(glossary: Glossary) -> None:
    assert tokenize("HA/DR") == ["ha", "dr"]
    assert glossary.find_terms(tokenize("HA/DR lessons"))[0][:2] == (0, 2)
    assert "hadr" in glossary.find_terms(tokenize("ha/dr"))[0][2]
    assert glossary.find_terms(tokenize("REL TO FVEY")) == [
        (0, 2, ["releasable to"]), (2, 3, ["five eyes"])]


def test_longest_match_wins() -> None:
    small = Glossary([["drone", "uas"], ["counter drone", "c-uas"], ["swarm", "massed drones"]])
    assert small.find_terms(["counter", "drone", "swarm"]) == [
        (0, 2, ["c-uas"]), (2, 3, ["massed drones"])]
    assert small.find_terms(["drone", "counter"]) == [(0, 1, ["uas"])]
    assert small.find_terms(["counter"]) == []


def test_matches_do_not_overlap_and_unknown_words_are_skipped(glossary: Glossary) -> None:
    words = tokenize("Our LNO used the COP while the fuel truck refuelled")
    found = glossary.find_terms(words)
    spans = [(start, end) for start, end, _ in found]
    assert spans == [(1, 2), (4, 5), (7, 9)]  # lno, cop, "fuel truck" (not "fuel")
    assert "bowser" in found[2][2]


def test_stemmed_fold_matches_plurals() -> None:
    plain = Glossary([["lno", "liaison officer"]])
    folded = Glossary([["lno", "liaison officer"]], fold=stemmed)
    assert plain.find_terms(["lnos"]) == []
    assert folded.find_terms(tokenize("LNOs and liaison officers")) == [
        (0, 1, ["liaison officer"]), (2, 4, ["lno"])]


def test_glossary_tolerates_bad_groups() -> None:
    g = Glossary([["a b", "c"], ["c", "d"], ["lonely"], [" ", "e", "E "]])
    assert g.groups == [["a b", "c"]]
    assert g.expansions("c") == ["a b"]
    assert g.expansions("d") == []
    assert len(g) == 1


def test_validate_groups_reports_each_kind_of_problem() -> None:
    problems = validate_groups([
        ["LNO", "lo"], ["LO", "x"],       # a term in two groups
        ["alone"],                        # fewer than two terms
        ["defence x", "Defense X"],       # variants of one term are one term
        ["y" * 81, "z"],                  # too long
        [f"t{n}" for n in range(MAX_GROUP_TERMS + 1)],
        ["/", "q"],                       # no letters or digits
    ])
    text = "\n".join(problems)
    assert 'The term "lo" is in group 1 and group 2' in text
    assert "Group 3" in text and "fewer than 2" in text
    assert "Group 4" in text
    assert "longer than 80 characters" in text
    assert f"at most {MAX_GROUP_TERMS}" in text
    assert "no letters or digits" in text
    assert len(problems) == 6 + 1  # group 7 is also left with fewer than two terms


def test_validate_groups_limits_the_number_of_groups() -> None:
    groups = [[f"a{n}", f"b{n}"] for n in range(MAX_GROUPS + 1)]
    assert validate_groups(groups) == [
        f"There are {MAX_GROUPS + 1} groups; at most {MAX_GROUPS} are allowed."]
