"""Search benchmark: Muster's search service against a straightforward raw Whoosh set-up.

Run by hand (not by ``make test``; ``tests/test_bench.py`` does small smoke runs)::

    .venv/bin/python bench/search_bench.py --n 100000
    .venv/bin/python bench/search_bench.py --n 100000 --hosts 2 --skip-raw \
        --database-url postgresql://postgres@127.0.0.1:5432/postgres

One process, one synthetic corpus, one query mix, two engines:

1. A reproducible corpus of ``--n`` coalition lessons (word lists with a Zipf-like
   distribution, so common and rare terms both exist; British and American spellings;
   tags, taxonomy, nations, REL TO, statuses and dates like real records). Lesson ``i``
   comes from its own ``random.Random`` seeded from ``--seed`` and ``i``, so it can be
   regenerated at will instead of being held in memory (at 100k that would be a few
   hundred MB and would distort the memory figure).
2. **Muster**: users and lessons bulk-inserted into a fresh database with core inserts
   (the services would take hours at 100k): SQLite in the work folder, or, with
   ``--database-url``, a new PostgreSQL database ``muster_bench_<random>`` on that
   server, made by the migrations and dropped at the end (the database the URL names is
   never written to). Then ``lessons.search.reindex()`` (build rate), the query mix
   through ``search_lessons`` as users of several nations and roles (visibility, facets
   and snippets are the service's own), then single edits through ``update_lesson``
   timed until a search finds the new word (inline indexing: the request applies the
   change log itself).
3. With ``--hosts H`` (2 or more): H hosts on the one database, as a deployment with
   one index per host runs them (``SEARCH_INDEXER = "background"``). Host 1's index is
   the one built above; the others are copies of it (their ``INDEX_ID`` removed, so
   each registers as an index of its own). Each host gets its own indexer *process*,
   ``flask --app wsgi search worker`` (so no GIL is shared with the bench), and edits
   and new lessons committed through host 1's service layer are timed until *each*
   host's search finds them. Each host's query mix runs in a fresh process of its own
   (the probe below), for its search latency and memory.
4. **Raw Whoosh**, the set-up the issue's targets were measured with: one stemmed,
   stored TEXT field per text part (title boosted x3), ``MultifieldParser`` over them,
   KEYWORD fields for filters and facets, the default writer with one commit; every
   search carries the visibility filter, ``groupedby`` facets and highlights of the
   page's hits.
5. A fresh process (this script with ``--probe``) runs the query mix through Muster
   again, to report what an app worker with a searcher open holds in memory (and that
   process's own search times).

Each query is timed once, on its first execution, after a few *other* queries have
warmed the process. The last line of stdout is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: import the app's package
    sys.path.insert(0, str(ROOT))

from sqlalchemy import Integer, insert, select, text  # noqa: E402
from whoosh import index as whoosh_index  # noqa: E402
from whoosh import sorting  # noqa: E402
from whoosh.analysis import StemmingAnalyzer  # noqa: E402
from whoosh.fields import ID, KEYWORD, TEXT, Schema  # noqa: E402
from whoosh.qparser import MultifieldParser  # noqa: E402
from whoosh.query import And, Or, Query, Term  # noqa: E402

from bench.databases import Database, temporary_database  # noqa: E402
from lessons.policy import SHARED_STATUSES  # noqa: E402
from lessons.rules import DOMAINS, FUNCTIONS, STATUSES  # noqa: E402

DEFAULT_N = 100_000
DEFAULT_SEED = 1944
DEFAULT_QUERIES = 200
DEFAULT_UPDATES = 20
SUBMITS = 10  # new lessons submitted (at most; no more than --updates), each timed until
# a search finds it
WARMUP_QUERIES = 6
PER_PAGE = 10
PROGRESS_EVERY = 5_000
INSERT_BATCH = 1_000
UPDATE_DEADLINE_S = 10.0

# --- vocabulary -----------------------------------------------------------------------
# Most frequent first within each list only loosely: the corpus shuffles content words
# (seeded) before giving them Zipf ranks, so the "common" words differ by seed.
STOP_WORDS = (
    "the of and to a in was were for on with by at from as that this it not be had "
    "has their its which during all no or but between before after each our they"
).split()

CONTENT_WORDS = """
liaison officer network radio radios classification coalition partner partners exercise
operation brigade battalion division corps headquarters staff command control signal
communications encryption crypto key keys fill device account accounts access server
chat email portal gateway bandwidth satellite terminal antenna frequency frequencies
spectrum interference jamming relay repeater voice data link mission federated
interoperability interoperable standard standards procedure procedures doctrine training
rehearsal rehearsals planning planner planners conference timeline schedule deadline
delay delays approval approvals release releasability disclosure caveat caveats national
policy policies clearance clearances security vetting badge badges pass escort visitor
visitors facility facilities compound camp base airfield port pier dock railhead convoy
convoys route routes bridge crossing terrain weather visibility dust heat cold rain mud
snow night logistics sustainment supply supplies fuel ammunition rations water spares
parts maintenance repair recovery vehicle vehicles truck trucks trailer helicopter
helicopters aircraft airlift sealift ship ships vessel landing craft amphibious beach
shore movement deployment redeployment reception staging onward integration embarkation
load loads pallet pallets container containers customs quarantine biosecurity inspection
inspections medical casualty casualties evacuation MEDEVAC CASEVAC hospital surgeon nurse
clinic triage blood pharmacy dental fires artillery mortar mortars rocket targeting
target targets airspace coordination deconfliction observer observers JTAC forward
controller aviation drone drones UAS counter surveillance reconnaissance intelligence
ISR sensor sensors imagery analyst analysts report reports reporting template templates
format formats database spreadsheet tracker dashboard briefing briefings brief update
updates translation translator translators interpreter interpreters language terminology
acronym acronyms glossary dictionary manual handbook checklist checklists LNO exchange
officers embedded team teams cell cells desk commander commanders chief deputy sergeant
captain lieutenant colonel soldier soldiers sailor sailors airman airmen marine marines
reservist reservists contractor contractors civilian civilians host nation government
ministry embassy attache police border agency agencies NGO humanitarian disaster relief
protection force perimeter guard guards sentry patrol patrols checkpoint weapon weapons
rifle optics vision body helmet uniform kit equipment materiel procurement acquisition
budget funding finance contract contracts invoice payment payments cost costs shortfall
shortfalls gap gaps risk risks issue issues problem problems friction workaround
solution fix interim permanent limitation limitations constraint constraints lesson
lessons observation discussion conclusion recommendation recommendations action actions
owner owners validation evidence capability capabilities readiness certification
accreditation authority authorities permission permissions waiver waivers exemption
request requests process processes workflow handover takeover rotation rotations shift
shifts watch battle rhythm meeting meetings board boards working group matrix order
orders fragmentary directive directives instruction instructions plan plans estimate
assessment assessments review AAR debrief hotwash simulation simulator computer assisted
synthetic environment scenario injects inject umpire umpires evaluation evaluator
software hardware laptop laptops printer printers cable cables power generator
generators battery batteries charger chargers adapter adapters plug plugs voltage
mapping maps grid grids datum coordinates navigation GPS timing clock clocks time zone
local daylight handheld vehicle-mounted manpack HF VHF UHF SATCOM tactical strategic
operational joint combined multinational bilateral trilateral allied alliance NATO
FVEY agreement arrangement memorandum letter intent status forces legal lawyer
engagement rules escalation incident incidents accident accidents injury injuries
safety hazard hazards fatigue morale welfare leave accommodation tents showers catering
food kitchen laundry transport bus buses rail train trains flight flights manifest
manifests passenger passengers baggage cargo freight warehouse storage inventory stock
stocks demand demands forecast forecasting consumption rate rates spare tyres wheels
engine engines filter filters oil lubricant lubricants diesel petrol kerosene jet
aviation-fuel nozzle nozzles coupling couplings hose hoses pump pumps tank tanks tanker
tankers bowser dispensing refuel rearm resupply replenishment underway at-sea boarding
interdiction maritime naval fleet frigate destroyer submarine helicopter-capable deck
flight-deck hangar runway taxiway apron parking ramp loading unloading crane cranes
forklift forklifts materials handling container-handling reach stacker
engineer engineers bridging obstacle obstacles mines clearance-diver diver divers
explosive ordnance disposal EOD IED threat threats adversary enemy opposing red blue
green white friendly neutral civil-military CIMIC information operations influence
media public affairs social cyber electronic warfare EW emitter emitters signature
camouflage concealment deception dispersal hardening resilience redundancy backup
fallback contingency degraded denied disrupted intermittent limited austere remote
isolated distributed dispersed mobile static fixed temporary ad hoc improvised manual
paper runner runners courier couriers fax telephone phone phones mobile-phone
smartphone app application applications royalty-free open-source commercial military
secret unclassified releasable protected restricted official sensitive marking
markings label labels banner banners caveated national-only foreign foreigners
disclosure-officer sponsor sponsors nomination nominations vetting-office portal-access
identity credential credentials token tokens smartcard smartcards PKI certificate
certificates directory directories address addresses distribution list lists mailbox
mailboxes folder folders share shares drive drives cloud storage-limit quota quotas
bandwidth-limit latency outage outages restart reboot patch patches version versions
incompatible compatible interface interfaces protocol protocols waveform waveforms
encryption-key keying rekey rekeying crypto-period loader loaders custodian custodians
courier-run handover-brief desk-officer watchkeeper watchkeepers duty log logs diary
journal record records minutes notes summary summaries lessons-identified
""".split()

# American form -> British form. The vocabulary holds the American forms; a lesson
# written in British style renders them British, so search must match both ways.
US_TO_UK = {
    "defense": "defence", "organization": "organisation", "maneuver": "manoeuvre",
    "program": "programme", "center": "centre", "color": "colour", "authorize": "authorise",
    "authorized": "authorised", "recognize": "recognise", "prioritize": "prioritise",
    "standardize": "standardise", "harbor": "harbour", "armor": "armour",
    "armored": "armoured", "refueling": "refuelling", "traveling": "travelling",
    "license": "licence", "analyze": "analyse", "catalog": "catalogue", "labor": "labour",
    "behavior": "behaviour", "favor": "favour", "honor": "honour", "neighbor": "neighbour",
    "theater": "theatre", "meter": "metre", "kilometer": "kilometre", "liter": "litre",
    "fulfill": "fulfil", "enroll": "enrol", "canceled": "cancelled", "modeling": "modelling",
    "signaling": "signalling", "labeled": "labelled", "synchronize": "synchronise",
    "synchronization": "synchronisation", "utilize": "utilise", "familiarize": "familiarise",
    "mobilization": "mobilisation", "optimize": "optimise", "gray": "grey", "tire": "tyre",
    "aluminum": "aluminium", "civilianize": "civilianise", "sanitize": "sanitise",
    "localize": "localise", "realize": "realise", "emphasize": "emphasise",
    "criticize": "criticise", "minimize": "minimise", "customize": "customise",
    "categorize": "categorise", "organize": "organise", "organized": "organised",
    "counseling": "counselling",
}

# Multi-word terms that staffs write again and again (phrase queries need them).
PHRASES = (
    "liaison officer", "mission network", "rules of engagement", "combat service support",
    "command post", "common operating picture", "host nation support", "battle rhythm",
    "joint fires", "casualty evacuation", "forward operating base", "secure voice",
    "key material", "national caveats", "foreign disclosure officer",
    "information exchange requirement", "reception staging and onward movement",
    "air tasking order", "airspace control", "fire support coordination",
    "release authority", "data link", "blue force tracking", "friendly force information",
    "coalition chat", "mission partner environment", "federated mission networking",
    "cross domain solution", "classification marking", "letter of intent",
    "status of forces agreement", "memorandum of understanding", "diplomatic clearance",
    "customs clearance", "ammunition interchangeability", "fuel interoperability",
    "night vision goggles", "aeromedical evacuation", "role two hospital",
    "blood supply chain", "main planning conference", "final planning conference",
    "initial planning conference", "after action review", "exercise control", "white cell",
    "opposing force", "training objectives", "lessons learned", "liaison cell",
    "exchange officer", "battle damage assessment", "call for fire", "close air support",
    "joint terminal attack controller", "ship to shore movement", "landing craft",
    "beach landing site", "logistics support area", "spare parts", "vehicle recovery",
    "route clearance", "counter drone", "electronic warfare", "spectrum management",
    "frequency allocation", "crypto fill", "radio check", "satellite bandwidth",
    "email gateway", "account provisioning", "security clearance", "visitor badge",
    "civil military cooperation", "humanitarian assistance", "disaster relief",
    "defense attache", "maneuver enhancement", "theater entry", "organization chart",
)

BASE_TAGS = (
    "liaison", "mission-network", "radios", "classification", "releasability", "crypto",
    "interoperability", "logistics", "fuel", "ammunition", "medical", "medevac", "casevac",
    "airspace", "fires", "targeting", "isr", "uas", "counter-uas", "electronic-warfare",
    "spectrum", "satellite", "bandwidth", "chat", "email", "accounts", "security-clearance",
    "foreign-disclosure", "national-caveats", "language", "interpreters", "terminology",
    "doctrine", "training", "rehearsal", "planning", "battle-rhythm", "reporting",
    "common-operating-picture", "blue-force-tracking", "data-link", "link-16",
    "sustainment", "maintenance", "spare-parts", "vehicles", "recovery", "convoy",
    "route-clearance", "engineering", "bridging", "amphibious", "landing-craft",
    "ship-to-shore", "airlift", "sealift", "rsom", "customs", "biosecurity", "quarantine",
    "host-nation-support", "status-of-forces", "legal", "rules-of-engagement", "finance",
    "contracting", "procurement", "infrastructure", "facilities", "accommodation",
    "catering", "water", "power", "generators", "batteries", "weather", "night-operations",
    "cold-weather", "jungle", "desert", "urban", "maritime", "close-air-support", "jtac",
    "artillery", "mortars", "air-defence", "air-defense", "force-protection", "cyber",
    "information-operations", "civil-military", "humanitarian", "disaster-relief",
    "police", "border", "personnel", "welfare", "health", "dental", "blood", "pharmacy",
    "command-and-control", "liaison-officer", "exchange-officer", "staff-procedures",
    "orders", "synchronisation", "gps", "timing", "mapping", "navigation", "pki",
    "identity", "cloud", "outage", "software", "hardware", "printing", "paper-backup",
)
TAG_COUNT = 300

ORIGINATORS = ("USA", "GBR", "AUS", "CAN", "NZL", "FRA", "DEU", "NLD", "NOR", "JPN",
               "KOR", "POL")
ORIGINATOR_WEIGHTS = (28, 20, 14, 12, 6, 5, 5, 3, 2, 2, 2, 1)
FVEY = ("AUS", "CAN", "GBR", "NZL", "USA")
PARTNERS = ("USA", "GBR", "AUS", "CAN", "NZL", "FRA", "DEU", "NLD", "NOR", "DNK", "ITA",
            "ESP", "POL", "SWE", "FIN", "BEL", "EST", "JPN", "KOR", "SGP", "IDN", "PHL")
BROAD_REL = ("FRA", "DEU", "NLD", "NOR", "DNK", "ITA", "ESP", "POL", "SWE", "FIN", "BEL",
             "EST", "JPN", "KOR")
# How likely a nation's writers are to use British spellings.
BRITISH_SHARE = {"GBR": 0.92, "AUS": 0.9, "NZL": 0.9, "CAN": 0.5, "USA": 0.04}
BRITISH_SHARE_OTHERS = 0.4

KIND_WEIGHTS = {"lesson": 65, "workaround": 25, "best_practice": 10}
STATUS_WEIGHTS = {"draft": 8, "submitted": 15, "validated": 25, "action_assigned": 12,
                  "learned": 20, "rejected": 4, "withdrawn": 3, "archived": 13}
assert set(STATUS_WEIGHTS) == set(STATUSES), "keep the bench's statuses in step with rules"

UNITS = {
    "USA": ("1st Cavalry Division", "25th Infantry Division", "3rd Marine Division",
            "I Corps", "11th Airborne Division", "III Marine Expeditionary Force",
            "7th Signal Command", "593rd Expeditionary Sustainment Command",
            "17th Field Artillery Brigade", "1st Special Forces Group"),
    "GBR": ("1 (UK) Division", "3 (UK) Division", "16 Air Assault Brigade",
            "3 Commando Brigade", "1 Signal Brigade", "101 Operational Sustainment Brigade",
            "Joint Helicopter Command", "Standing Joint Force Headquarters"),
    "AUS": ("1st Division", "1st Brigade", "3rd Brigade", "7th Brigade",
            "17th Sustainment Brigade", "6th Combat Support Brigade", "Amphibious Task Group",
            "2nd Battalion Royal Australian Regiment", "1st Signal Regiment"),
    "CAN": ("1st Canadian Division", "2 Canadian Mechanized Brigade Group",
            "5 Canadian Mechanized Brigade Group", "Canadian Joint Operations Command",
            "1 Service Battalion", "Canadian Forces Joint Signal Regiment"),
    "NZL": ("1st (NZ) Brigade", "Queen Alexandra's Mounted Rifles",
            "1st Battalion Royal New Zealand Infantry Regiment",
            "Headquarters Joint Forces New Zealand", "2nd Combat Service Support Battalion"),
}
OTHER_UNITS = ("Multinational Brigade", "National Support Element",
               "Special Operations Task Group", "Joint Logistics Unit",
               "Air Component Liaison Team", "Maritime Component Command")
EVENT_WORDS = (
    ("SOUTHERN", "NORTHERN", "IRON", "SILVER", "STEADFAST", "PACIFIC", "COASTAL", "BLUE",
     "GREY", "RAPID", "DISTANT", "HIGH"),
    ("JACKAL", "KESTREL", "SABRE", "TRIDENT", "HARBOUR", "LANCE", "ANVIL", "BRIDGE",
     "FALCON", "MERIDIAN", "CURRENT", "SHIELD"),
)
LOCATIONS = ("Shoalwater Bay Training Area", "Salisbury Plain", "Fort Irwin",
             "Grafenwoehr", "Wainwright", "Waiouru", "Townsville Field Training Area",
             "Camp Lejeune", "Sennelager", "Bardufoss", "Hohenfels", "Yakima Training Center",
             "Cultana", "Otterburn", "Gagetown", "Rena", "Okinawa", "Darwin", "Pohang")

# Rare words: invented names (places, people, codewords) from syllables, with a
# Pareto-distributed rank so a few are common and most appear in one or two lessons.
SYLLABLES = ("ka", "ro", "li", "ta", "mu", "ne", "so", "vi", "da", "pe", "zo", "gu",
             "ha", "bi", "we", "lo", "ri", "ny", "ce", "fa", "to", "mi", "sa", "ku")
RARE_SPACE = len(SYLLABLES) ** 4
P_PHRASE = 0.025  # per token: a stock multi-word term instead
P_RARE = 0.01  # per token: a rare invented name instead

# The ranked vocabulary: Zipf-Mandelbrot with this exponent over the stop words, the
# real words above and invented filler (acronyms and made-up words) standing in for the
# middle of a real vocabulary: terms in a few percent down to a tenth of a percent of
# lessons, without which every two-word AND would match a tenth of the corpus. The most
# common ranks are all real words; the other real words are spread among the filler.
ZIPF_EXPONENT = 1.2
VOCABULARY = 30_000
COMMON_REAL = 300
SPREAD_REAL = 1_500
URN_SIZE = 1 << 21  # words drawn from an urn: uniform picks, no bisect per word
FILLER_SYLLABLES = ("bar", "den", "fil", "gor", "hun", "jat", "kel", "mor", "nap", "pil",
                    "ros", "sut", "tev", "vun", "wal", "zen", "cra", "dro", "ple", "stu")
# Endings the Porter stemmer leaves alone, so each filler word is its own term.
FILLER_ENDINGS = ("", "a", "o", "ex", "um", "ik", "ot", "an")
QUERY_OPERATORS = {"AND", "OR", "NOT", "TO", "ANDNOT", "ANDMAYBE"}

PUBLIC_ID_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"  # as lessons.models.base
PASSWORD = "bench-password"


def rare_word(rank: int) -> str:
    """The invented name of Zipf rank ``rank`` (a bijection on the syllable space)."""
    n = (rank * 7919 + 104_729) % RARE_SPACE  # 7919 is prime: scrambles, never collides
    letters = []
    for _ in range(4):
        n, digit = divmod(n, len(SYLLABLES))
        letters.append(SYLLABLES[digit])
    return "".join(letters).capitalize()


def is_rare_word(token: str) -> bool:
    word = token.lower()
    return len(word) == 8 and all(word[k:k + 2] in SYLLABLES for k in range(0, 8, 2))


def _urn(words: list[str], cum_weights: list[float]) -> list[str]:
    """Each word repeated in proportion to its weight (at least once)."""
    scale = URN_SIZE / cum_weights[-1]
    urn: list[str] = []
    previous = 0.0
    for word, cumulative in zip(words, cum_weights, strict=True):
        urn.extend([word] * max(1, round((cumulative - previous) * scale)))
        previous = cumulative
    return urn


def _occurrences(r: random.Random, expected: float) -> int:
    """``expected`` rounded up or down at random, so its mean stays ``expected``."""
    whole = int(expected)
    return whole + (r.random() < expected - whole)


def _unique(words: list[str]) -> list[str]:
    return list(dict.fromkeys(words))


def _zipf(count: int, offset: float = 2.7, exponent: float = 1.0) -> list[float]:
    """Cumulative Zipf-Mandelbrot weights: rank r weighs 1 / (r + offset) ** exponent."""
    return list(accumulate(1.0 / (rank + offset) ** exponent for rank in range(count)))


def _made_up_words() -> Iterator[str]:
    syllables = FILLER_SYLLABLES
    for size in (2, 3):
        for k in range(len(syllables) ** size * len(FILLER_ENDINGS)):
            k, ending = divmod(k, len(FILLER_ENDINGS))
            parts = []
            for _ in range(size):
                k, digit = divmod(k, len(syllables))
                parts.append(syllables[digit])
            yield "".join(parts) + FILLER_ENDINGS[ending]


def _acronyms(r: random.Random) -> Iterator[str]:
    letters = "ABCDEFGHIJKLMNOPRSTUVW"
    while True:
        yield "".join(r.choice(letters) for _ in range(r.choice((3, 4, 4, 5))))


def filler_words(count: int, taken: set[str], r: random.Random) -> list[str]:
    """``count`` distinct invented words, half acronyms (staff writing is full of them)
    and half made-up lower-case words, in random order."""
    taken = {w.lower() for w in taken}
    words: list[str] = []
    sources = (_acronyms(r), _made_up_words())
    while len(words) < count:
        word = next(sources[len(words) % 2])
        if word.lower() not in taken and word not in QUERY_OPERATORS:
            taken.add(word.lower())
            words.append(word)
    r.shuffle(words)
    return words


@dataclass(frozen=True)
class BenchUser:
    id: int
    username: str
    nation: str
    roles: tuple[str, ...]
    unit: str

    @property
    def analyst(self) -> bool:
        return "analyst" in self.roles


def _users() -> list[BenchUser]:
    """Per originator nation an analyst, a plain user and six more contributors; plus a
    Swedish user who sees only what is released widely."""
    users: list[BenchUser] = []
    for nation in ORIGINATORS:
        units = UNITS.get(nation, OTHER_UNITS)
        names = [("analyst", ("analyst", "contributor")), ("user", ("contributor",))]
        names += [(f"c{k}", ("contributor",)) for k in range(1, 7)]
        for k, (name, roles) in enumerate(names):
            users.append(BenchUser(len(users) + 1, f"{nation.lower()}.{name}", nation, roles,
                                   units[k % len(units)]))
    users.append(BenchUser(len(users) + 1, "swe.user", "SWE", ("contributor",),
                           OTHER_UNITS[0]))
    return users


# Who searches: several nations, with and without the analyst role.
SEARCHERS = ("usa.analyst", "gbr.user", "aus.analyst", "can.user", "nzl.user",
             "fra.analyst", "deu.user", "swe.user")


class Corpus:
    """The synthetic lessons: ``lesson(i)`` is the same dict for the same seed, always."""

    def __init__(self, seed: int, n: int) -> None:
        self.seed = seed
        self.n = n
        r = random.Random(f"{seed}/vocabulary")
        content = _unique([w for w in CONTENT_WORDS + list(US_TO_UK)
                           if w.lower() not in STOP_WORDS])
        r.shuffle(content)
        ranked = content[:COMMON_REAL] + filler_words(
            VOCABULARY - len(STOP_WORDS) - len(content), set(content) | set(STOP_WORDS), r)
        for word in content[COMMON_REAL:]:
            ranked.insert(r.randrange(COMMON_REAL, SPREAD_REAL), word)
        self.content = content
        self.ranked = ranked  # every word but the stop words, most frequent first
        self.words = STOP_WORDS + ranked  # stop words lead, as in any real text
        self.word_weights = _zipf(len(self.words), exponent=ZIPF_EXPONENT)
        phrases = list(PHRASES)
        r.shuffle(phrases)
        self.phrases = phrases
        self.phrase_weights = _zipf(len(phrases), 1.5)
        self.urn = _urn(self.words, self.word_weights)
        self.urn_uk = [US_TO_UK.get(w, w) for w in self.urn]
        self.phrases_uk = [" ".join(US_TO_UK.get(w, w) for w in p.split()) for p in phrases]
        derived = [p.replace(" ", "-") for p in PHRASES] + [
            w.lower() for w in content if w.isalpha() and len(w) > 3]
        tags = _unique(list(BASE_TAGS) + derived)[:TAG_COUNT]
        head, tail = tags[:12], tags[12:]  # the named examples stay common
        r.shuffle(tail)
        self.tags = head + tail
        self.tag_weights = _zipf(len(self.tags), 4.0)
        self.users = _users()
        self.authors: dict[str, list[BenchUser]] = defaultdict(list)
        for user in self.users:
            self.authors[user.nation].append(user)

    # -- text --------------------------------------------------------------------------
    def tokens(self, r: random.Random, count: int, british: bool) -> list[str]:
        """``count`` words; a stock phrase counts as one (it stays together in a sentence).

        Phrases and rare names overwrite random positions rather than being decided per
        word: generating 100k lessons twice is a good part of the run otherwise.
        """
        out = r.choices(self.urn_uk if british else self.urn, k=count)
        phrases = self.phrases_uk if british else self.phrases
        for _ in range(_occurrences(r, count * P_PHRASE)):
            out[r.randrange(count)] = r.choices(phrases, cum_weights=self.phrase_weights)[0]
        for _ in range(_occurrences(r, count * P_RARE)):
            out[r.randrange(count)] = rare_word(
                min(int(r.paretovariate(0.7)), RARE_SPACE) - 1)
        return out

    def prose(self, r: random.Random, count: int, british: bool) -> str:
        tokens = self.tokens(r, count, british)
        sentences = []
        start = 0
        while start < len(tokens):
            end = start + r.randint(8, 20)
            words = tokens[start:end]
            words[0] = words[0][:1].upper() + words[0][1:]
            sentences.append(" ".join(words) + ".")
            start = end
        return " ".join(sentences)

    def title(self, r: random.Random, british: bool) -> str:
        # Titles are mostly content words: fewer stop words than prose.
        words = [w for w in self.tokens(r, 24, british) if w not in STOP_WORDS]
        words = words[:r.randint(8, 12)]
        for _ in range(r.randint(1, 2)):
            words.insert(r.randrange(1, len(words)), r.choice(STOP_WORDS[:12]))
        return (words[0][:1].upper() + " ".join(words)[1:])[:300]

    # -- lessons -----------------------------------------------------------------------
    def public_id(self, i: int, r: random.Random) -> str:
        """Unique by construction: the index in base 31, then random characters."""
        base = len(PUBLIC_ID_ALPHABET)
        digits = ""
        n = i
        while True:
            n, d = divmod(n, base)
            digits = PUBLIC_ID_ALPHABET[d] + digits
            if n == 0:
                break
        digits = digits.rjust(4, PUBLIC_ID_ALPHABET[0])
        return digits + "".join(r.choice(PUBLIC_ID_ALPHABET) for _ in range(10 - len(digits)))

    def lesson(self, i: int) -> dict[str, Any]:
        """Lesson ``i`` (database id ``i + 1``) as contract values plus ids and dates."""
        r = random.Random(f"{self.seed}/lesson/{i}")
        originator = r.choices(ORIGINATORS, weights=ORIGINATOR_WEIGHTS)[0]
        british = r.random() < BRITISH_SHARE.get(originator, BRITISH_SHARE_OTHERS)
        kind = r.choices(list(KIND_WEIGHTS), weights=list(KIND_WEIGHTS.values()))[0]
        status = r.choices(list(STATUS_WEIGHTS), weights=list(STATUS_WEIGHTS.values()))[0]
        author = r.choice(self.authors[originator])
        tags: list[str] = []
        wanted = r.choices((1, 2, 3, 4, 5, 6), weights=(15, 25, 25, 18, 10, 7))[0]
        for _ in range(wanted * 3):
            tag = r.choices(self.tags, cum_weights=self.tag_weights)[0]
            if tag not in tags:
                tags.append(tag)
            if len(tags) == wanted:
                break
        nations = {originator}
        for _ in range(r.choices((0, 1, 2, 3, 4), weights=(20, 35, 25, 12, 8))[0]):
            nations.add(PARTNERS[min(int(r.expovariate(0.25)), len(PARTNERS) - 1)])
        roll = r.random()
        if roll < 0.30:
            releasable = {originator}
        elif roll < 0.65:
            releasable = set(FVEY) | {originator}
        elif roll < 0.85:
            releasable = set(nations)
        else:
            releasable = set(FVEY) | set(r.sample(BROAD_REL, r.randint(4, 12))) | {originator}
        observed = (date(2015, 1, 1) + timedelta(days=r.randrange(3653))
                    if r.random() > 0.03 else None)
        created = (datetime.combine(observed or date(2024, 6, 1), datetime.min.time())
                   + timedelta(days=r.randint(1, 60), minutes=r.randrange(1440)))
        event = f"{r.choice(EVENT_WORDS[0])} {r.choice(EVENT_WORDS[1])}"
        year = (observed or created.date()).year
        workaround = kind == "workaround"
        public_id = self.public_id(i, r)
        return {
            "id": i + 1,
            "public_id": public_id,
            "external_id": f"MUS-{public_id}",
            "version": r.randint(1, 6),
            "status": status,
            "title": self.title(r, british),
            "observation": self.prose(r, r.randint(40, 200), british),
            "discussion": self.prose(r, r.randint(40, 200), british),
            "conclusion": self.prose(r, r.randint(40, 200), british),
            "recommendation": self.prose(r, r.randint(40, 200), british),
            "kind": kind,
            "friction": self.prose(r, r.randint(40, 150), british) if workaround else "",
            "workaround": self.prose(r, r.randint(40, 150), british) if workaround else "",
            "limits": self.prose(r, r.randint(20, 100), british) if workaround else "",
            "permanence": r.choice(("interim", "permanent")) if workaround else "",
            "source_event": (f"Exercise {event} {year}" if r.random() < 0.7
                             else f"Operation {event.split()[1]}"),
            "observed_on": observed,
            "location": r.choice(LOCATIONS),
            "unit": author.unit,
            "originator_nation": originator,
            "classification": "UNCLASSIFIED",
            "author_id": author.id,
            "created_at": created,
            "updated_at": created,
            "tags": tags,
            "domains": sorted(r.sample(DOMAINS, r.choices((1, 2, 3), (50, 35, 15))[0])),
            "functions": sorted(r.sample(FUNCTIONS, r.choices((1, 2), (70, 30))[0])),
            "nations": sorted(nations),
            "releasable_to": sorted(releasable),
        }

    def lessons(self) -> Iterator[dict[str, Any]]:
        for i in range(self.n):
            yield self.lesson(i)


# --- the query mix --------------------------------------------------------------------
QUERY_CLASSES = (("terms", 0.20), ("rare", 0.07), ("and", 0.10), ("or", 0.10),
                 ("phrase", 0.14), ("field", 0.17), ("page5", 0.08), ("natural", 0.14))
# Words a searcher adds when describing a problem in their own words.
NATURAL_FILLERS = ("our", "we", "could", "not", "get", "before", "the", "had", "no", "was",
                   "were", "too", "late", "why", "how", "did", "when", "they", "partner")


@dataclass(frozen=True)
class BenchQuery:
    kind: str  # the query class
    text: str
    page: int
    searcher: str  # username


def _class_counts(total: int) -> dict[str, int]:
    """Split ``total`` over the classes by share (largest remainder)."""
    exact = {name: total * share for name, share in QUERY_CLASSES}
    counts = {name: int(value) for name, value in exact.items()}
    for name in sorted(exact, key=lambda k: counts[k] - exact[k])[:total - sum(counts.values())]:
        counts[name] += 1
    return counts


class QueryMaker:
    """Distinct queries drawn from the corpus's vocabulary and from its lessons' text."""

    def __init__(self, corpus: Corpus, salt: str) -> None:
        self.corpus = corpus
        self.r = random.Random(f"{corpus.seed}/{salt}")

    def _styled(self, word: str) -> str:
        # Searchers spell their own way: a British form must find American text too.
        return US_TO_UK.get(word, word) if self.r.random() < 0.3 else word

    def common(self) -> str:
        return self._styled(self.r.choice(self.corpus.ranked[:COMMON_REAL]))

    def middling(self) -> str:
        return self._styled(self.r.choice(self.corpus.ranked[COMMON_REAL:SPREAD_REAL]))

    def term(self) -> str:
        return self.common() if self.r.random() < 0.6 else self.middling()

    def _lesson_tokens(self) -> list[str]:
        lesson = self.corpus.lesson(self.r.randrange(self.corpus.n))
        part = self.r.choice(("observation", "discussion", "conclusion", "recommendation"))
        return [t.strip(".") for t in lesson[part].split()]

    def _stretch(self) -> list[str]:
        """Two or three adjacent words of a lesson, not starting or ending on a stop word."""
        for _ in range(20):
            tokens = self._lesson_tokens()
            start = self.r.randrange(max(1, len(tokens) - 3))
            words = tokens[start:start + self.r.choice((2, 3))]
            if (len(words) >= 2 and words[0].lower() not in STOP_WORDS
                    and words[-1].lower() not in STOP_WORDS):
                return words
        return [self.common(), self.common()]

    def rare(self) -> str:
        for _ in range(20):
            rare = [t for t in self._lesson_tokens() if is_rare_word(t)]
            if rare:
                return self.r.choice(rare)
        return self.middling()

    def phrase(self) -> str:
        roll = self.r.random()
        if roll < 0.4:
            words = self.r.choice(PHRASES).split()
            words = [self._styled(w) for w in words]
        elif roll < 0.7:  # a stretch of a real lesson, as someone who read it recalls it
            words = self._stretch()
        else:  # two common words: many candidates, few true phrases
            words = [self.common(), self.common()]
        text = '"' + " ".join(w.lower() for w in words) + '"'
        return f"{text} {self.term()}" if self.r.random() < 0.2 else text

    def field(self) -> str:
        c, r = self.corpus, self.r
        tag = r.choices(c.tags, cum_weights=c.tag_weights)[0]
        nation = r.choice(PARTNERS[:10])
        options: list[Callable[[], str]] = [
            lambda: f"tag:{tag} {self.term()}",
            lambda: f"tag:{tag}",
            lambda: f"kind:workaround {self.term()}",
            lambda: f"kind:{r.choice(list(KIND_WEIGHTS))}",
            lambda: f"nation:{nation} {self.term()}",
            lambda: f"nation:{nation}",
            lambda: f"originator:{r.choice(ORIGINATORS[:6])} {self.term()}",
            lambda: f"status:{r.choice(sorted(SHARED_STATUSES))} {self.term()}",
            lambda: f"domain:{r.choice(DOMAINS)} {self.term()}",
            lambda: f"function:{r.choice(FUNCTIONS)} {self.term()}",
            lambda: f"unit:{r.choice(('brigade', 'division', 'signal', 'battalion'))} "
                    f"{self.term()}",
            lambda: f"source_event:{r.choice(EVENT_WORDS[1]).lower()}",
            lambda: f"year:{r.randint(2015, 2024)} {self.term()}",
            lambda: f"tag:{tag} kind:workaround",
        ]
        return r.choice(options)()

    def natural(self) -> str:
        """4 to 10 words describing a problem in the searcher's own words: some of a
        lesson's words (not all of them together, not in order), common and middling
        words of the collection, and the small words of speech."""
        wanted = self.r.randint(4, 10)
        words = [t.lower() for t in self._lesson_tokens() if t.isalpha()]
        self.r.shuffle(words)
        text = words[:self.r.randint(1, max(1, wanted // 2))]
        while len(text) < wanted:
            roll = self.r.random()
            text.append(self.r.choice(NATURAL_FILLERS) if roll < 0.35 else
                        self.common() if roll < 0.7 else self.middling())
        self.r.shuffle(text)
        return " ".join(text)

    def make(self, kind: str) -> BenchQuery:
        r = self.r
        page = 1
        if kind == "terms":
            text = " ".join(self.term() for _ in range(r.choices((1, 2, 3), (45, 35, 20))[0]))
        elif kind == "rare":
            text = self.rare() if r.random() < 0.6 else f"{self.rare()} {self.common()}"
        elif kind == "and":
            text = " AND ".join(self.term() for _ in range(r.choice((2, 2, 3))))
        elif kind == "or":
            text = " OR ".join(self.term() for _ in range(r.choice((2, 2, 3))))
        elif kind == "phrase":
            text = self.phrase()
        elif kind == "field":
            text = self.field()
        elif kind == "natural":
            text = self.natural()
        else:
            text = self.r.choice(self.corpus.ranked[:60]).lower()
            if r.random() < 0.5:
                text = f"{text} {self.common()}"
            page = 5
        return BenchQuery(kind, text, page, r.choice(SEARCHERS))


def make_queries(corpus: Corpus, count: int) -> tuple[list[BenchQuery], list[BenchQuery]]:
    """``count`` distinct measured queries, and warm-up queries distinct from them."""
    maker = QueryMaker(corpus, "queries")
    seen: set[str] = set()
    queries: list[BenchQuery] = []
    for kind, wanted in _class_counts(count).items():
        made = 0
        for _ in range(wanted * 50):
            query = maker.make(kind)
            if query.text.lower() not in seen:
                seen.add(query.text.lower())
                queries.append(query)
                made += 1
                if made == wanted:
                    break
    random.Random(f"{corpus.seed}/order").shuffle(queries)  # classes interleaved
    warm = QueryMaker(corpus, "warmup")
    warmups: list[BenchQuery] = []
    while len(warmups) < WARMUP_QUERIES:
        query = warm.make(("terms", "phrase", "field")[len(warmups) % 3])
        if query.text.lower() not in seen:
            seen.add(query.text.lower())
            warmups.append(query)
    return queries, warmups


# --- measuring ------------------------------------------------------------------------
def percentile(values: list[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    k = (len(ordered) - 1) * pct / 100
    low = math.floor(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KB


def current_rss_mb() -> float | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def machine() -> str:
    """CPU model, core count and Python: the README quotes figures with their machine."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cpu, Python {platform.python_version()}"


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def say(text: str = "") -> None:
    print(text, flush=True)


class Progress:
    """Prints every ``PROGRESS_EVERY`` items with a rate and an estimate of time left."""

    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = total
        self.started = time.perf_counter()
        self.next = PROGRESS_EVERY

    def __call__(self, done: int, _total: int | None = None) -> None:
        if done < self.next and done != self.total:
            return
        self.next = (done // PROGRESS_EVERY + 1) * PROGRESS_EVERY
        spent = time.perf_counter() - self.started
        rate = done / spent if spent else 0.0
        left = (self.total - done) / rate if rate else 0.0
        say(f"  {self.label}: {done:>7,}/{self.total:,}  {rate:8.1f}/s  "
            f"{spent:6.0f} s spent, ~{left:.0f} s left")


@dataclass
class Timed:
    """One query's outcome on one engine."""

    query: BenchQuery
    ms: float
    total: int


@dataclass
class EngineFigures:
    build_docs_per_s: float = 0.0
    build_s: float = 0.0
    update_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    after_response_ms: list[float] = field(default_factory=list)
    searches: list[Timed] = field(default_factory=list)
    failures: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def search_ms(self, kind: str | None = None) -> list[float]:
        return [t.ms for t in self.searches if kind is None or t.query.kind == kind]


# --- Muster ---------------------------------------------------------------------------
def _lesson_rows(corpus: Corpus, tag_ids: dict[str, int]) -> Iterator[dict[str, list]]:
    """Rows per table for each batch of lessons, parents before children."""
    scalars = ("id", "public_id", "external_id", "version", "status", "title", "observation",
               "discussion", "conclusion", "recommendation", "kind", "friction",
               "workaround", "limits", "permanence", "source_event", "observed_on",
               "location", "unit", "originator_nation", "classification", "author_id",
               "created_at", "updated_at")
    batch: dict[str, list] = defaultdict(list)
    for lesson in corpus.lessons():
        lesson_id = lesson["id"]
        batch["lessons"].append({key: lesson[key] for key in scalars})
        batch["release"] += [{"lesson_id": lesson_id, "nation_code": c}
                             for c in lesson["releasable_to"]]
        batch["nations"] += [{"lesson_id": lesson_id, "nation_code": c}
                             for c in lesson["nations"]]
        batch["domains"] += [{"lesson_id": lesson_id, "slug": s} for s in lesson["domains"]]
        batch["functions"] += [{"lesson_id": lesson_id, "slug": s}
                               for s in lesson["functions"]]
        batch["tags"] += [{"lesson_id": lesson_id, "tag_id": tag_ids[t]}
                          for t in lesson["tags"]]
        if len(batch["lessons"]) == INSERT_BATCH:
            yield batch
            batch = defaultdict(list)
    if batch["lessons"]:
        yield batch


def _insert_corpus(corpus: Corpus, reference: bool = True) -> None:
    """Reference data (unless the migrations made it), users, tags and lessons through
    core inserts, one commit per batch."""
    from werkzeug.security import generate_password_hash

    from lessons.extensions import db
    from lessons.models import Lesson, Nation, NationGroup, Tag, User
    from lessons.models.lesson import (
        LessonDomain,
        LessonFunction,
        LessonNation,
        LessonRelease,
        lesson_tags,
    )
    from lessons.models.nation import nation_group_members
    from lessons.models.user import UserRole
    from lessons.reference import group_rows, nation_rows

    if reference:
        groups, members = group_rows()  # as tests/conftest.py seed_reference_data
        db.session.execute(insert(Nation), nation_rows())
        db.session.execute(insert(NationGroup), groups)
        db.session.execute(insert(nation_group_members), members)
    password_hash = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
    now = datetime(2025, 1, 1)
    db.session.execute(insert(User.__table__), [
        {"id": u.id, "username": u.username, "display_name": u.username,
         "nation_code": u.nation, "unit": u.unit, "password_hash": password_hash,
         "active": True, "created_at": now} for u in corpus.users])
    db.session.execute(insert(UserRole.__table__), [
        {"user_id": u.id, "role": role} for u in corpus.users for role in u.roles])
    tag_ids = {name: k + 1 for k, name in enumerate(corpus.tags)}
    db.session.execute(insert(Tag.__table__),
                       [{"id": i, "name": name} for name, i in tag_ids.items()])
    db.session.commit()
    tables = {"lessons": Lesson.__table__, "release": LessonRelease.__table__,
              "nations": LessonNation.__table__, "domains": LessonDomain.__table__,
              "functions": LessonFunction.__table__, "tags": lesson_tags}
    progress = Progress("insert", corpus.n)
    done = 0
    for batch in _lesson_rows(corpus, tag_ids):
        for name, table in tables.items():
            if batch[name]:
                db.session.execute(insert(table), batch[name])
        db.session.commit()
        done += len(batch["lessons"])
        progress(done)
    _align_sequences()


def _align_sequences() -> None:
    """PostgreSQL hands out ids from sequences, which rows inserted with their own ids
    leave at 1: move each past the highest id, or the first lesson a service creates
    would collide with lesson 1. (SQLite takes the highest id plus one by itself.)"""
    from lessons.extensions import db

    if db.engine.dialect.name != "postgresql":
        return
    quote = db.engine.dialect.identifier_preparer.quote
    for table in db.metadata.sorted_tables:
        columns = list(table.primary_key.columns)
        if len(columns) != 1 or not isinstance(columns[0].type, Integer):
            continue
        sequence = db.session.scalar(text("SELECT pg_get_serial_sequence(:t, :c)"),
                                     {"t": table.name, "c": columns[0].name})
        if sequence:
            db.session.execute(text(
                f"SELECT setval(:s, (SELECT COALESCE(MAX({quote(columns[0].name)}), 0) + 1 "
                f"FROM {quote(table.name)}), false)"), {"s": sequence})
    db.session.commit()


def _close_muster_searchers() -> None:
    """The service keeps one searcher per thread for the life of the process; close them
    before the index folder goes (guarded: this reaches into the index module)."""
    from lessons.search import index as muster_index

    local = getattr(muster_index, "_local", None)
    searchers = getattr(local, "searchers", None)
    if isinstance(searchers, dict):
        for _generation, searcher in list(searchers.values()):
            searcher.close()
        searchers.clear()


def _update_targets(corpus: Corpus, count: int) -> list[dict[str, Any]]:
    """Lessons an analyst of their originator nation may edit and see: not draft,
    withdrawn or archived."""
    r = random.Random(f"{corpus.seed}/updates")
    targets: list[dict[str, Any]] = []
    seen: set[int] = set()
    for _ in range(count * 100):
        if len(targets) == count or len(seen) == corpus.n:
            break
        i = r.randrange(corpus.n)
        if i in seen:
            continue
        seen.add(i)
        lesson = corpus.lesson(i)
        if lesson["status"] not in ("draft", "withdrawn", "archived"):
            targets.append(lesson)
    return targets


def _new_lessons(corpus: Corpus, count: int, first: int = 0) -> list[dict[str, Any]]:
    """Lessons beyond the corpus (same generator), from its ``first`` one on, as their
    authors would submit them."""
    fields = ("title", "observation", "discussion", "conclusion", "recommendation", "kind",
              "friction", "workaround", "limits", "permanence", "source_event", "location",
              "observed_on", "tags", "domains", "functions", "nations", "releasable_to")
    by_id = {user.id: user.username for user in corpus.users}
    made = []
    for i in range(corpus.n + first, corpus.n + first + count):
        lesson = corpus.lesson(i)
        data = {name: lesson[name] for name in fields}
        data["author"] = by_id[lesson["author_id"]]
        made.append(data)
    return made


def _ms_until_found(user, word: str, started: float, figures: EngineFigures) -> float:
    """Milliseconds from ``started`` until a search by ``user`` finds ``word``."""
    from lessons import search

    while True:
        found = search.search_lessons(user, word, per_page=PER_PAGE).total
        elapsed = time.perf_counter() - started
        if found or elapsed > UPDATE_DEADLINE_S:
            break
        time.sleep(0.002)
    figures.failures += 0 if found else 1
    return elapsed * 1000


def _send_response(app, figures: EngineFigures) -> None:
    """What the server does once the edit's response is ready and sent: run the
    request's after-request work and close the response (Muster merges small index
    segments then). Timed apart from the edit, which did not wait for it."""
    started = time.perf_counter()
    app.process_response(app.response_class()).close()
    figures.after_response_ms.append((time.perf_counter() - started) * 1000)


def _update_word(k: int) -> str:
    """A word found in no lesson: letters only, so no analyzer splits it."""
    letters = ""
    n = k
    while True:
        n, d = divmod(n, 26)
        letters += chr(ord("a") + d)
        if n == 0:
            break
    return f"qzxbench{letters}"


BUILT = "built"  # --reuse: the database and index as the build left them
BUILT_FILES = ("bench.db", "index")


def _keep_built(corpus: Corpus, workdir: Path, figures: EngineFigures) -> None:
    """Copy the freshly built database and index aside, with the build's figures."""
    built = workdir / BUILT
    shutil.rmtree(built, ignore_errors=True)
    built.mkdir()
    shutil.copy2(workdir / "bench.db", built / "bench.db")
    shutil.copytree(workdir / "index", built / "index")
    (built / "build.json").write_text(json.dumps({
        "n": corpus.n, "seed": corpus.seed, "build_s": figures.build_s,
        "schema": _schema_fingerprint(),
        "extra": {k: v for k, v in figures.extra.items()
                  if k in ("insert_s", "rss_after_build_mb",
                           "reindex_children_peak_rss_mb")}}))


def _schema_fingerprint() -> str:
    """The database tables and columns and the index schema version this code expects: a
    kept build from code with other ones cannot be reused."""
    import hashlib

    import lessons.models  # noqa: F401  (every table registered)
    from lessons.extensions import db
    from lessons.search.schema import SCHEMA_VERSION

    columns = sorted(f"{table.name}.{column.name}" for table in db.metadata.sorted_tables
                     for column in table.columns)
    return hashlib.sha256(f"{SCHEMA_VERSION}:{','.join(columns)}".encode()).hexdigest()[:16]


def _restore_built(corpus: Corpus, workdir: Path, figures: EngineFigures) -> bool:
    """Put back a database and index kept by an earlier ``--reuse`` run of the same
    corpus (so edits made by that run are gone); False if there is none."""
    built = workdir / BUILT
    try:
        kept = json.loads((built / "build.json").read_text())
    except (OSError, ValueError):
        return False
    if (kept.get("n"), kept.get("seed"), kept.get("schema")) != (
            corpus.n, corpus.seed, _schema_fingerprint()):
        return False  # another corpus, or built by a version with other tables
    shutil.copy2(built / "bench.db", workdir / "bench.db")
    shutil.copytree(built / "index", workdir / "index")
    figures.build_s = kept["build_s"]
    figures.build_docs_per_s = corpus.n / kept["build_s"]
    figures.extra.update(kept.get("extra", {}))
    figures.extra["reused_build"] = True
    return True


@contextmanager
def fresh_database(url: str | None, workdir: Path) -> Iterator[Database]:
    """A new, empty database (``bench/databases.py``), dropped at the end whatever
    happens."""
    with temporary_database(url, workdir, "bench") as database:
        yield database
    if database.name:
        say(f"dropped the database {database.name}")


def _create_schema(database: Database) -> bool:
    """SQLite: the models' tables (``create_all``, fast; the reference data is inserted
    with the corpus). PostgreSQL: the migrations, as a deployment gets them (they bring
    the reference data). Returns whether the reference data is still to be inserted."""
    from lessons.extensions import db

    if database.kind == "sqlite":
        db.create_all()
        return True
    from flask_migrate import upgrade

    upgrade()
    return False


def run_muster(corpus: Corpus, queries: list[BenchQuery], warmups: list[BenchQuery],
               updates: int, workdir: Path, database: Database, reuse: bool = False,
               hosts: int = 1) -> EngineFigures:
    from lessons import search
    from lessons.extensions import db
    from lessons.models import Lesson, User
    from lessons.services.lessons import create_lesson, update_lesson

    figures = EngineFigures()
    app = _muster_app(database.url, workdir / "index")
    user_ids = {u.username: u.id for u in corpus.users}
    try:
        if reuse and _restore_built(corpus, workdir, figures):
            say(f"Muster: reusing the database and index built earlier in {workdir / BUILT}"
                f" ({figures.build_docs_per_s:.0f} docs/s when built)")
        else:
            with app.app_context():
                reference = _create_schema(database)
                say(f"Muster: inserting {corpus.n:,} lessons into {database.kind} "
                    "(core inserts)")
                started = time.perf_counter()
                _insert_corpus(corpus, reference)
                figures.extra["insert_s"] = round(time.perf_counter() - started, 1)
                say(f"Muster: reindex ({corpus.n:,} lessons)")
                started = time.perf_counter()
                search.reindex(Progress("reindex", corpus.n))
                figures.build_s = time.perf_counter() - started
                figures.build_docs_per_s = corpus.n / figures.build_s
                say(f"  built in {figures.build_s:.1f} s: "
                    f"{figures.build_docs_per_s:.0f} docs/s")
                figures.extra["rss_after_build_mb"] = current_rss_mb()
                # The writer processes' own peak (this process's is in peak_rss_mb).
                figures.extra["reindex_children_peak_rss_mb"] = resource.getrusage(
                    resource.RUSAGE_CHILDREN).ru_maxrss / 1024
                db.session.remove()
                db.engine.dispose()
            if reuse:
                _keep_built(corpus, workdir, figures)

        def run(query: BenchQuery) -> Timed:
            # One request context per query, as the search page gets.
            with app.test_request_context():
                user = db.session.get(User, user_ids[query.searcher])
                started = time.perf_counter()
                page = search.search_lessons(user, query.text, page=query.page,
                                             per_page=PER_PAGE)
                ms = (time.perf_counter() - started) * 1000
                return Timed(query, ms, page.total)

        say(f"Muster: {len(warmups)} warm-up queries, then {len(queries)} timed queries")
        for query in warmups:
            run(query)
        for k, query in enumerate(queries, 1):
            figures.searches.append(run(query))
            if k % 50 == 0:
                say(f"  {k}/{len(queries)} queries")

        say(f"Muster: {updates} single-lesson edits, each until a search finds it")
        commit_ms: list[float] = []
        for k, target in enumerate(_update_targets(corpus, updates)):
            word = _update_word(k)
            with app.test_request_context():
                analyst = db.session.get(User, user_ids[
                    f"{target['originator_nation'].lower()}.analyst"])
                observation = db.session.scalar(
                    select(Lesson.observation).where(Lesson.id == target["id"]))
                started = time.perf_counter()
                update_lesson(analyst, target["public_id"],
                              {"observation": f"{observation} {word}"})
                commit_ms.append((time.perf_counter() - started) * 1000)
                figures.update_ms.append(_ms_until_found(analyst, word, started, figures))
                _send_response(app, figures)
        figures.extra["update_commit_p50_ms"] = round(percentile(commit_ms, 50), 1)
        submits = min(SUBMITS, updates)
        say(f"Muster: {submits} new lessons, each submitted until a search finds it")
        for k, data in enumerate(_new_lessons(corpus, submits)):
            word = _update_word(updates + k)
            with app.test_request_context():
                author = db.session.get(User, user_ids[data.pop("author")])
                data["observation"] += f" {word}"
                started = time.perf_counter()
                create_lesson(author, data, submit=True)
                figures.submit_ms.append(_ms_until_found(author, word, started, figures))
                _send_response(app, figures)
        figures.extra["index_mb"] = round(folder_mb(workdir / "index"), 1)
        _close_muster_searchers()
        if hosts > 1:
            figures.extra["hosts"] = run_hosts(corpus, queries, warmups, updates, workdir,
                                               database, hosts)
            figures.extra["app_process"] = figures.extra["hosts"][0].probe
        else:
            say("Muster: memory of a fresh app process running the query mix")
            figures.extra["app_process"] = _probe_app_process(
                queries, warmups, user_ids, database.url, workdir / "index",
                workdir / PROBE_FILE)
    finally:
        _close_muster_searchers()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    return figures


def _muster_app(database_url: str, index_dir: Path, **overrides: object):
    from lessons import create_app

    return create_app("testing", SQLALCHEMY_DATABASE_URI=database_url,
                      INDEX_DIR=str(index_dir), **overrides)


# --- several hosts --------------------------------------------------------------------
HOSTS_DIR = "hosts"
HOST_DEADLINE_S = 30.0  # an edit not found on a host by then counts as a failure
HOST_READY_S = 180.0  # the first edit waits this long for every indexer to start
WORKER_STOP_S = 30.0


@dataclass
class HostFigures:
    """One host's side of the multi-host phase."""

    number: int
    index_dir: Path
    edit_ms: list[float] = field(default_factory=list)  # host 1's edit until found here
    submit_ms: list[float] = field(default_factory=list)  # host 1's new lesson, likewise
    failures: int = 0
    lag_at_end: int | None = None
    index_mb: float | None = None
    probe: dict[str, Any] = field(default_factory=dict)


class HostWorker:
    """``flask --app wsgi search worker`` for one host: its own process, its own
    ``MUSTER_INDEX_DIR``, the shared database; its log goes to a file."""

    def __init__(self, host: HostFigures, database_url: str, log: Path) -> None:
        self.log = log
        env = {**os.environ, "MUSTER_ENV": "development", "DATABASE_URL": database_url,
               "MUSTER_INDEX_DIR": str(host.index_dir), "MUSTER_SEARCH_INDEXER": "background",
               "SECRET_KEY": secrets.token_hex(32), "PYTHONUNBUFFERED": "1"}
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "search", "worker"], cwd=ROOT,
            env=env, stdout=self._log_file, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.process.poll() is None

    def rss_mb(self) -> float | None:
        try:
            pages = int(Path(f"/proc/{self.process.pid}/statm").read_text().split()[1])
        except (OSError, ValueError, IndexError):
            return None
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM (the worker finishes its round), then SIGKILL."""
        if self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(WORKER_STOP_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log_file.close()

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-1500:]
        except OSError:
            return ""


def _make_host_indexes(workdir: Path, count: int) -> list[HostFigures]:
    """Host 1 keeps the built index; hosts 2.. get copies without its INDEX_ID, so each
    registers under a name of its own (as README says to do when copying an index)."""
    from lessons.search.index import INDEX_ID_FILE

    hosts = [HostFigures(1, workdir / "index")]
    root = workdir / HOSTS_DIR
    shutil.rmtree(root, ignore_errors=True)
    for number in range(2, count + 1):
        target = root / f"host{number}" / "index"
        shutil.copytree(workdir / "index", target)
        (target / INDEX_ID_FILE).unlink(missing_ok=True)
        hosts.append(HostFigures(number, target))
    return hosts


def _visible_everywhere(apps: list, hosts: list[HostFigures], user_id: int, word: str,
                        wanted: int | None, started: float, deadline: float
                        ) -> list[float | None]:
    """Milliseconds from ``started`` until each host's search finds ``word`` (None where
    it did not within ``deadline`` seconds). A host is searched once its index position
    (a file read) has reached the change's log number ``wanted``: searching every host
    non-stop would take the CPU its indexer needs."""
    from lessons import search
    from lessons.extensions import db
    from lessons.models import User
    from lessons.search.index import IndexStore

    stores = [IndexStore(host.index_dir) for host in hosts]
    found: list[float | None] = [None] * len(hosts)
    waiting = set(range(len(hosts)))
    while waiting and time.perf_counter() - started < deadline:
        for k in sorted(waiting):
            position = stores[k].position()
            if wanted is not None and (position is None or position.last_id < wanted):
                continue
            with apps[k].test_request_context():
                user = db.session.get(User, user_id)
                total = search.search_lessons(user, word, per_page=PER_PAGE).total
            if total:
                found[k] = (time.perf_counter() - started) * 1000
                waiting.discard(k)
        if waiting:
            time.sleep(0.002)
    return found


def run_hosts(corpus: Corpus, queries: list[BenchQuery], warmups: list[BenchQuery],
              updates: int, workdir: Path, database: Database, count: int
              ) -> list[HostFigures]:
    """Several hosts on the one database, each with its indexer process: host 1's edits
    and new lessons timed until each host's search finds them; then each host's query
    mix and memory in a fresh process."""
    from lessons import search
    from lessons.extensions import db
    from lessons.models import Lesson, User
    from lessons.search import changelog
    from lessons.services.lessons import create_lesson, update_lesson

    say(f"Hosts: {count} indexes on the one {database.kind} database, each with its own "
        "`flask --app wsgi search worker` process")
    hosts = _make_host_indexes(workdir, count)
    apps = [_muster_app(database.url, host.index_dir, SEARCH_INDEXER="background")
            for host in hosts]
    user_ids = {u.username: u.id for u in corpus.users}
    workers: list[HostWorker] = []
    try:
        for host in hosts:
            workers.append(HostWorker(host, database.url,
                                      workdir / f"worker-host{host.number}.log"))
        targets = _update_targets(corpus, updates)
        base = 10_000  # words of their own: the single-host phase used 0..updates+submits

        def edit(target: dict[str, Any], word: str) -> tuple[int, float, int | None]:
            analyst_id = user_ids[f"{target['originator_nation'].lower()}.analyst"]
            with apps[0].test_request_context():
                analyst = db.session.get(User, analyst_id)
                observation = db.session.scalar(
                    select(Lesson.observation).where(Lesson.id == target["id"]))
                started = time.perf_counter()
                update_lesson(analyst, target["public_id"],
                              {"observation": f"{observation} {word}"})
                return analyst_id, started, changelog.last_written()

        say("  waiting for every host's indexer (a first edit, not timed)")
        analyst_id, started, wanted = edit(targets[0], _update_word(base - 1))
        ready = _visible_everywhere(apps, hosts, analyst_id, _update_word(base - 1), wanted,
                                    started, HOST_READY_S)
        if None in ready or not all(worker.alive() for worker in workers):
            for host, worker in zip(hosts, workers, strict=True):
                say(f"  host {host.number} worker log:\n{worker.tail()}")
            raise RuntimeError("not every host's indexer applied the first edit within "
                               f"{HOST_READY_S:g} s")
        say("  ready: " + ", ".join(f"host {h.number} {ms:.0f} ms"
                                    for h, ms in zip(hosts, ready, strict=True)))

        say(f"  {updates} edits through host 1, each until every host's search finds it")
        for k, target in enumerate(targets):
            word = _update_word(base + k)
            analyst_id, started, wanted = edit(target, word)
            seen = _visible_everywhere(apps, hosts, analyst_id, word, wanted, started,
                                       HOST_DEADLINE_S)
            for host, ms in zip(hosts, seen, strict=True):
                if ms is None:
                    host.failures += 1
                else:
                    host.edit_ms.append(ms)
        submits = min(SUBMITS, updates)
        say(f"  {submits} new lessons through host 1, each until every host's search "
            "finds it")
        for k, data in enumerate(_new_lessons(corpus, submits, first=submits)):
            word = _update_word(base + updates + k)
            author_id = user_ids[data.pop("author")]
            data["observation"] += f" {word}"
            with apps[0].test_request_context():
                author = db.session.get(User, author_id)
                started = time.perf_counter()
                create_lesson(author, data, submit=True)
                wanted = changelog.last_written()
            seen = _visible_everywhere(apps, hosts, author_id, word, wanted, started,
                                       HOST_DEADLINE_S)
            for host, ms in zip(hosts, seen, strict=True):
                if ms is None:
                    host.failures += 1
                else:
                    host.submit_ms.append(ms)
        for host, app, worker in zip(hosts, apps, workers, strict=True):
            with app.app_context():
                host.lag_at_end = search.status().pending
                host.probe["worker_rss_mb"] = _round(worker.rss_mb())
        with apps[0].app_context():
            _head, registered = search.indexes()
        folders = {str(host.index_dir.resolve()) for host in hosts}
        say(f"  registered indexes: {len(registered)} "
            f"({sum(1 for r in registered if r.folder in folders)} of them these hosts'), "
            "lag at the end: " + ", ".join(f"host {h.number} {h.lag_at_end}" for h in hosts))
    finally:
        for worker in workers:
            worker.terminate()  # all at once: each takes a moment to finish its round
        for worker in workers:
            worker.stop()
        _close_muster_searchers()
        for app in apps:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
    for host in hosts:
        say(f"  host {host.number}: its query mix in a fresh process")
        indexer_rss = host.probe.get("worker_rss_mb")
        host.probe = _probe_app_process(queries, warmups, user_ids, database.url,
                                        host.index_dir,
                                        workdir / f"probe-host{host.number}.json")
        host.probe["worker_rss_mb"] = indexer_rss
        host.index_mb = round(folder_mb(host.index_dir), 1)
    return hosts


PROBE_FILE = "probe-queries.json"


def _probe_app_process(queries: list[BenchQuery], warmups: list[BenchQuery],
                       user_ids: dict[str, int], database_url: str, index_dir: Path,
                       spec: Path) -> dict[str, Any]:
    """This process's memory holds the generator, the bulk insert and the reindex; an
    app worker's does not. So a fresh process (this script with ``--probe``) runs the
    query mix against the same database and the given index, and reports its own memory
    and search times."""
    def entries(items: list[BenchQuery]) -> list[dict[str, Any]]:
        return [{"text": q.text, "page": q.page, "user_id": user_ids[q.searcher]}
                for q in items]

    spec.write_text(json.dumps({"database_url": database_url, "index_dir": str(index_dir),
                                "warmups": entries(warmups), "queries": entries(queries)}))
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--probe",
                           str(spec)], capture_output=True, text=True, timeout=3600,
                          check=False)
    if done.returncode != 0:
        say(f"  probe failed: {done.stderr.strip()[-500:]}")
        return {}
    return json.loads(done.stdout.strip().splitlines()[-1])


def probe(spec_file: Path) -> dict[str, Any]:
    """(In the fresh process.) Memory before the first search and after the mix with the
    searcher still open; each query's time after the warm-ups, as in the main run."""
    from lessons import search
    from lessons.extensions import db
    from lessons.models import User

    spec = json.loads(spec_file.read_text())
    app = _muster_app(spec["database_url"], Path(spec["index_dir"]))
    with app.app_context():
        db.session.execute(select(1))
        before = current_rss_mb()
    times: list[float] = []
    try:
        for k, query in enumerate(spec["warmups"] + spec["queries"]):
            with app.test_request_context():
                user = db.session.get(User, query["user_id"])
                started = time.perf_counter()
                search.search_lessons(user, query["text"], page=query["page"],
                                      per_page=PER_PAGE)
                if k >= len(spec["warmups"]):
                    times.append((time.perf_counter() - started) * 1000)
        after = current_rss_mb()
    finally:
        _close_muster_searchers()
        with app.app_context():
            db.engine.dispose()
    return {"rss_before_search_mb": _round(before), "rss_with_searcher_mb": _round(after),
            "peak_rss_mb": _round(peak_rss_mb()),
            "search_p50_ms": _round(percentile(times, 50)),
            "search_p95_ms": _round(percentile(times, 95))}


# --- raw Whoosh -----------------------------------------------------------------------
RAW_TEXT_FIELDS = ("title", "observation", "discussion", "conclusion", "recommendation",
                   "friction", "workaround", "limits")
SNIPPET_FIELDS = RAW_TEXT_FIELDS[1:]  # the service's snippets come from these too
FACET_FIELDS = ("kind", "status", "domain", "function", "nation", "originator", "tag",
                "year")
MULTI_VALUED = ("tag", "domain", "function", "nation")


def raw_schema() -> Schema:
    text = {name: TEXT(analyzer=StemmingAnalyzer(), stored=True) for name in RAW_TEXT_FIELDS}
    return Schema(
        lesson_id=ID(stored=True, unique=True),
        **text,
        tag=KEYWORD(commas=True, lowercase=True),
        kind=KEYWORD(lowercase=True),
        status=KEYWORD(lowercase=True),
        domain=KEYWORD(commas=True, lowercase=True),
        function=KEYWORD(commas=True, lowercase=True),
        nation=KEYWORD(lowercase=True),
        originator=KEYWORD(lowercase=True),
        year=KEYWORD,
        releasable_to=KEYWORD(lowercase=True),
        author_id=ID,
        unit=TEXT,
        source_event=TEXT,
    )


def raw_document(lesson: dict[str, Any]) -> dict[str, str]:
    when = lesson["observed_on"] or lesson["created_at"].date()
    return {
        "lesson_id": str(lesson["id"]),
        **{name: lesson[name] for name in RAW_TEXT_FIELDS},
        "tag": ",".join(lesson["tags"]),
        "kind": lesson["kind"],
        "status": lesson["status"],
        "domain": ",".join(lesson["domains"]),
        "function": ",".join(lesson["functions"]),
        "nation": " ".join(lesson["nations"]),
        "originator": lesson["originator_nation"],
        "year": str(when.year),
        "releasable_to": " ".join(lesson["releasable_to"]),
        "author_id": str(lesson["author_id"]),
        "unit": lesson["unit"],
        "source_event": lesson["source_event"],
    }


def raw_visibility(user: BenchUser) -> Query:
    """The policy's rule written by hand as a Whoosh query (same semantics)."""
    nation = user.nation.lower()
    own: list[Query] = [Or([Term("status", s) for s in sorted(SHARED_STATUSES)]),
                        Term("author_id", str(user.id))]
    if user.analyst:
        own.append(And([Term("status", "rejected"), Term("originator", nation)]))
    return And([Term("releasable_to", nation), Or(own)])


RAW_FACETS = {name: sorting.FieldFacet(name, allow_overlap=name in MULTI_VALUED,
                                       maptype=sorting.Count) for name in FACET_FIELDS}


def raw_search(searcher, parser: MultifieldParser, user: BenchUser, query: BenchQuery) -> int:
    """What the search page needs: total, facet counts, the page's hits with highlights."""
    parsed = parser.parse(query.text)
    first = (query.page - 1) * PER_PAGE
    results = searcher.search(parsed, limit=first + PER_PAGE, filter=raw_visibility(user),
                              groupedby=RAW_FACETS)
    total = len(results)
    facets = {}
    for name in FACET_FIELDS:
        counts = results.groups(name)
        facets[name] = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:20]
    shown = [(hit["lesson_id"], [hit.highlights(name, top=2) for name in SNIPPET_FIELDS])
             for hit in results[first:first + PER_PAGE]]
    assert len(shown) <= PER_PAGE and len(facets) == len(FACET_FIELDS)
    return total


def run_raw(corpus: Corpus, queries: list[BenchQuery], warmups: list[BenchQuery],
            updates: int, workdir: Path) -> EngineFigures:
    figures = EngineFigures()
    path = workdir / "raw"
    path.mkdir()
    ix = whoosh_index.create_in(str(path), raw_schema())
    say(f"Raw Whoosh: building ({corpus.n:,} lessons, default writer, one commit)")
    spent = 0.0
    progress = Progress("raw build", corpus.n)
    writer = ix.writer()
    for lesson in corpus.lessons():
        document = raw_document(lesson)  # generating text is not the engine's time
        started = time.perf_counter()
        writer.add_document(**document)
        spent += time.perf_counter() - started
        progress(lesson["id"])
    say("  committing")
    started = time.perf_counter()
    writer.commit()
    spent += time.perf_counter() - started
    figures.build_s = spent
    figures.build_docs_per_s = corpus.n / spent
    say(f"  built in {spent:.1f} s of engine time: {figures.build_docs_per_s:.0f} docs/s")

    users = {u.username: u for u in corpus.users}
    parser = MultifieldParser(list(RAW_TEXT_FIELDS), ix.schema, fieldboosts={"title": 3.0})
    say(f"Raw Whoosh: {len(warmups)} warm-up queries, then {len(queries)} timed queries")
    with ix.searcher() as searcher:
        for query in warmups:
            raw_search(searcher, parser, users[query.searcher], query)
        for k, query in enumerate(queries, 1):
            started = time.perf_counter()
            total = raw_search(searcher, parser, users[query.searcher], query)
            figures.searches.append(Timed(query, (time.perf_counter() - started) * 1000,
                                          total))
            if k % 50 == 0:
                say(f"  {k}/{len(queries)} queries")
    figures.extra["index_mb"] = round(folder_mb(path), 1)

    say(f"Raw Whoosh: {updates} single-document updates (update_document + commit)")
    for k, lesson in enumerate(_update_targets(corpus, updates)):
        lesson["observation"] += " " + _update_word(k)
        document = raw_document(lesson)
        started = time.perf_counter()
        writer = ix.writer()
        writer.update_document(**document)
        writer.commit()
        figures.update_ms.append((time.perf_counter() - started) * 1000)
    ix.close()
    return figures


# --- report ---------------------------------------------------------------------------
def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _fmt(value: float | None, width: int = 9, digits: int = 1) -> str:
    return f"{value:>{width}.{digits}f}" if value is not None else f"{'-':>{width}}"


def report(args: argparse.Namespace, muster: EngineFigures, raw: EngineFigures | None,
           muster_peak: float) -> dict[str, Any]:
    kinds = [name for name, _ in QUERY_CLASSES]
    say()
    say(f"Search latency in ms, each query timed once (n={args.n:,}, seed={args.seed}, "
        f"{len(muster.searches)} queries, {PER_PAGE} per page)")
    say(f"{'class':<8}{'count':>6}{'Muster p50':>12}{'raw p50':>10}{'ratio':>8}"
        f"{'Muster p95':>12}{'raw p95':>10}{'ratio':>8}")
    classes: dict[str, dict[str, Any]] = {}
    for kind in [*kinds, None]:
        ours = muster.search_ms(kind)
        theirs = raw.search_ms(kind) if raw else []
        if not ours:
            continue
        row = {"count": len(ours),
               "p50_ms": round(percentile(ours, 50), 1),
               "p95_ms": round(percentile(ours, 95), 1),
               "raw_p50_ms": round(percentile(theirs, 50), 1) if theirs else None,
               "raw_p95_ms": round(percentile(theirs, 95), 1) if theirs else None}
        label = kind or "all"
        say(f"{label:<8}{row['count']:>6}{_fmt(row['p50_ms'], 12)}{_fmt(row['raw_p50_ms'], 10)}"
            f"{_fmt(_ratio(row['p50_ms'], row['raw_p50_ms']), 8, 2)}"
            f"{_fmt(row['p95_ms'], 12)}{_fmt(row['raw_p95_ms'], 10)}"
            f"{_fmt(_ratio(row['p95_ms'], row['raw_p95_ms']), 8, 2)}")
        if kind:
            classes[kind] = row

    search_p50 = percentile(muster.search_ms(), 50)
    search_p95 = percentile(muster.search_ms(), 95)
    raw_p50 = percentile(raw.search_ms(), 50) if raw else None
    raw_p95 = percentile(raw.search_ms(), 95) if raw else None
    update_ms = percentile(muster.update_ms, 50)
    update_p95 = percentile(muster.update_ms, 95)
    submit_p50 = percentile(muster.submit_ms, 50) if muster.submit_ms else None
    submit_max = max(muster.submit_ms, default=None)
    raw_update = percentile(raw.update_ms, 50) if raw else None
    agree = (sum(1 for a, b in zip(muster.searches, raw.searches, strict=True)
                 if (a.total > 0) == (b.total > 0)) if raw else None)
    say()
    say(f"{'':<28}{'Muster':>12}{'raw Whoosh':>12}")
    say(f"{'build (docs/s)':<28}{_fmt(muster.build_docs_per_s, 12, 0)}"
        f"{_fmt(raw.build_docs_per_s if raw else None, 12, 0)}")
    say(f"{'update p50 (ms)':<28}{_fmt(update_ms, 12)}{_fmt(raw_update, 12)}"
        "   (Muster: committed and found by a search; raw: update + commit)")
    say(f"{'update p95 (ms)':<28}{_fmt(update_p95, 12)}")
    say(f"{'submit p50 / max (ms)':<28}{_fmt(submit_p50, 12)}{'':12}   "
        f"max {_fmt(submit_max, 0)} (a new lesson submitted until a search finds it)")
    say(f"{'after the response, max (ms)':<28}"
        f"{_fmt(max(muster.after_response_ms, default=None), 12)}"
        "   (merging small segments, which no edit waits for)")
    say(f"{'search p50 (ms)':<28}{_fmt(search_p50, 12)}{_fmt(raw_p50, 12)}"
        f"   ratio {_fmt(_ratio(search_p50, raw_p50), 0, 2)}")
    say(f"{'search p95 (ms)':<28}{_fmt(search_p95, 12)}{_fmt(raw_p95, 12)}"
        f"   ratio {_fmt(_ratio(search_p95, raw_p95), 0, 2)}")
    say(f"{'index size (MB)':<28}{_fmt(muster.extra.get('index_mb'), 12)}"
        f"{_fmt(raw.extra.get('index_mb') if raw else None, 12)}")
    say(f"{'queries finding nothing':<28}"
        f"{sum(1 for t in muster.searches if not t.total):>12}"
        f"{sum(1 for t in raw.searches if not t.total) if raw else '-':>12}")
    if agree is not None:
        say(f"queries where both engines agree on finding something or nothing: "
            f"{agree}/{len(muster.searches)}")
    if muster.failures:
        say(f"WARNING: {muster.failures} edits or submits were not found by search within "
            f"{UPDATE_DEADLINE_S:g} s")
    peak = peak_rss_mb()
    app_process = muster.extra.get("app_process") or {}
    say(f"peak memory of this process: {peak:.0f} MB (through the Muster phase, bulk insert "
        f"and reindex included: {muster_peak:.0f} MB)")
    say(f"a fresh app process after the query mix, searcher open: "
        f"{_fmt(app_process.get('rss_with_searcher_mb'), 0, 0)} MB "
        f"({_fmt(app_process.get('rss_before_search_mb'), 0, 0)} MB before its first search;"
        f" its searches p50 {_fmt(app_process.get('search_p50_ms'), 0)} / p95 "
        f"{_fmt(app_process.get('search_p95_ms'), 0)} ms)")
    per_host = report_hosts(muster.extra.get("hosts") or [], args)
    return {
        "n": args.n,
        "build_docs_per_s": round(muster.build_docs_per_s, 1),
        "update_ms": round(update_ms, 1),
        "search_p50_ms": round(search_p50, 1),
        "search_p95_ms": round(search_p95, 1),
        "raw_p50_ms": round(raw_p50, 1) if raw_p50 is not None else None,
        "raw_p95_ms": round(raw_p95, 1) if raw_p95 is not None else None,
        "ratio_p50": _ratio(search_p50, raw_p50),
        "ratio_p95": _ratio(search_p95, raw_p95),
        "peak_rss_mb": round(peak, 1),
        "seed": args.seed,
        "queries": len(muster.searches),
        "classes": classes,
        "raw_build_docs_per_s": round(raw.build_docs_per_s, 1) if raw else None,
        "raw_update_ms": round(raw_update, 1) if raw_update is not None else None,
        "update_commit_ms": muster.extra.get("update_commit_p50_ms"),
        "update_p95_ms": round(update_p95, 1),
        "submit_p50_ms": _round(submit_p50),
        "submit_max_ms": _round(submit_max),
        "after_response_max_ms": _round(max(muster.after_response_ms, default=None)),
        "update_failures": muster.failures,
        "insert_s": muster.extra.get("insert_s"),
        "reindex_children_peak_rss_mb": _round(
            muster.extra.get("reindex_children_peak_rss_mb")),
        "reused_build": bool(muster.extra.get("reused_build")),
        "muster_peak_rss_mb": round(muster_peak, 1),
        "muster_rss_after_build_mb": _round(muster.extra.get("rss_after_build_mb")),
        "app_rss_before_search_mb": app_process.get("rss_before_search_mb"),
        "app_rss_with_searcher_mb": app_process.get("rss_with_searcher_mb"),
        "muster_index_mb": muster.extra.get("index_mb"),
        "raw_index_mb": raw.extra.get("index_mb") if raw else None,
        "zero_hit_queries": sum(1 for t in muster.searches if not t.total),
        "raw_zero_hit_queries": sum(1 for t in raw.searches if not t.total) if raw else None,
        "database": args.database_kind,
        "hosts": args.hosts,
        "per_host": per_host,
        "app_search_p50_ms": app_process.get("search_p50_ms"),
        "app_search_p95_ms": app_process.get("search_p95_ms"),
        "machine": machine(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def report_hosts(hosts: list[HostFigures], args: argparse.Namespace) -> dict[str, Any]:
    """The multi-host phase's table; its figures by host number (JSON keys "1", "2"...)."""
    if not hosts:
        return {}
    say()
    say(f"{len(hosts)} hosts on one {args.database_kind} database, each with its own indexer "
        f"process; edits and new lessons committed through host 1, timed until each "
        f"host's search finds them (ms); each host's query mix in a fresh process")
    say(f"{'host':<6}{'search p50':>11}{'p95':>8}{'edit p50':>10}{'p95':>8}{'max':>8}"
        f"{'new p50':>9}{'max':>8}{'missed':>7}{'lag':>5}{'app MB':>8}{'indexer MB':>11}"
        f"{'index MB':>10}")
    figures: dict[str, Any] = {}
    for host in hosts:
        row = {
            "search_p50_ms": host.probe.get("search_p50_ms"),
            "search_p95_ms": host.probe.get("search_p95_ms"),
            "edit_visible_p50_ms": _round(percentile(host.edit_ms, 50)
                                          if host.edit_ms else None),
            "edit_visible_p95_ms": _round(percentile(host.edit_ms, 95)
                                          if host.edit_ms else None),
            "edit_visible_max_ms": _round(max(host.edit_ms, default=None)),
            "submit_visible_p50_ms": _round(percentile(host.submit_ms, 50)
                                            if host.submit_ms else None),
            "submit_visible_max_ms": _round(max(host.submit_ms, default=None)),
            "visible_failures": host.failures,
            "lag_at_end": host.lag_at_end,
            "app_rss_with_searcher_mb": host.probe.get("rss_with_searcher_mb"),
            "app_rss_before_search_mb": host.probe.get("rss_before_search_mb"),
            "indexer_rss_mb": host.probe.get("worker_rss_mb"),
            "index_mb": host.index_mb,
        }
        figures[str(host.number)] = row
        say(f"{host.number:<6}{_fmt(row['search_p50_ms'], 11)}{_fmt(row['search_p95_ms'], 8)}"
            f"{_fmt(row['edit_visible_p50_ms'], 10)}{_fmt(row['edit_visible_p95_ms'], 8)}"
            f"{_fmt(row['edit_visible_max_ms'], 8)}{_fmt(row['submit_visible_p50_ms'], 9)}"
            f"{_fmt(row['submit_visible_max_ms'], 8)}{host.failures:>7}"
            f"{row['lag_at_end'] if row['lag_at_end'] is not None else '-':>5}"
            f"{_fmt(row['app_rss_with_searcher_mb'], 8, 0)}"
            f"{_fmt(row['indexer_rss_mb'], 11, 0)}{_fmt(row['index_mb'], 10)}")
    if any(host.failures for host in hosts):
        say(f"WARNING: some edits or new lessons were not found on every host within "
            f"{HOST_DEADLINE_S:g} s (column missed)")
    return figures


def _round(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=DEFAULT_N, help="lessons in the corpus")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="corpus and query seed")
    parser.add_argument("--queries", type=int, default=DEFAULT_QUERIES,
                        help="distinct timed queries")
    parser.add_argument("--updates", type=int, default=DEFAULT_UPDATES,
                        help="single-lesson edits timed")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the database and indexes go (default: a temporary "
                             "folder, removed afterwards; a given folder is kept)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the built database and index in --workdir and, when "
                             "an earlier run of the same --n and --seed kept them, start "
                             "from a copy instead of rebuilding (the build figures are "
                             "then that run's)")
    parser.add_argument("--database-url", default="",
                        help="PostgreSQL server to run Muster's side on: a new database "
                             "muster_bench_<random> is created there and dropped at the "
                             "end (default: SQLite in the work folder)")
    parser.add_argument("--hosts", type=int, default=1,
                        help="index consumers on the one database, each with its own "
                             "index folder and `flask search worker` process (2 or more "
                             "adds the multi-host phase)")
    parser.add_argument("--probe", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--skip-raw", action="store_true",
                        help="measure Muster only (raw Whoosh takes 10 to 20 min at 100k)")
    args = parser.parse_args(argv)
    if args.n < 1 or args.queries < 1 or args.updates < 1:
        parser.error("--n, --queries and --updates must be positive")
    if args.reuse and args.workdir is None:
        parser.error("--reuse needs --workdir")
    if args.reuse and args.database_url:
        parser.error("--reuse keeps an SQLite build; it cannot be used with --database-url")
    if not 1 <= args.hosts <= 16:
        parser.error("--hosts must be from 1 to 16")
    args.database_kind = "postgresql" if args.database_url else "sqlite"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.probe:
        print(json.dumps(probe(args.probe)), flush=True)
        return 0
    temporary = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="muster-bench-")) if temporary else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in ("bench.db", "bench.db-wal", "bench.db-shm", "index", "raw", HOSTS_DIR):
        target = workdir / stale  # a kept workdir from an earlier run
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    # A SIGTERM ends the run through the finally clauses: the workers stop and the
    # PostgreSQL database made for the run is dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        say(f"Muster search benchmark: n={args.n:,} seed={args.seed} queries={args.queries} "
            f"updates={args.updates} hosts={args.hosts} database={args.database_kind} "
            f"workdir={workdir}")
        corpus = Corpus(args.seed, args.n)
        queries, warmups = make_queries(corpus, args.queries)
        counts = defaultdict(int)
        for query in queries:
            counts[query.kind] += 1
        say("query mix: " + ", ".join(f"{kind} {count}" for kind, count in counts.items()))
        with fresh_database(args.database_url, workdir) as database:
            if database.name:
                say(f"database: {database.name}, made for this run on the server "
                    "--database-url names (dropped at the end)")
            muster = run_muster(corpus, queries, warmups, args.updates, workdir, database,
                                args.reuse, args.hosts)
        muster_peak = peak_rss_mb()
        raw = None if args.skip_raw else run_raw(corpus, queries, warmups, args.updates,
                                                  workdir)
        figures = report(args, muster, raw, muster_peak)
    finally:
        if temporary:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
