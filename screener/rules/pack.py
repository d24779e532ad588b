"""Load a rule pack (TOML + reference CSVs), check every part of it, and collect all problems at once."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from screener.pipeline.batch import STATE_NUMBER_FIELDS
from screener.rules import ir
from screener.rules.errors import PackError, Problem
from screener.rules.parser import parse_condition
from screener.rules.tables import TableError, Tables, parse_time, text_position

LANES = {"green": 0, "yellow": 1, "red": 2}
RULE_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
RESERVED_IDS = {"random"}
# `id = "X"` in any TOML string form, to point problems at the rule's line in the pack file.
_ID_LINE = re.compile(r"""\s*id\s*=\s*(?:'{3}|"{3}|"|')(.*?)(?:'{3}|"{3}|"|')\s*(?:#.*)?$""")
_KEY_LINE = re.compile(r"""\s*([A-Za-z0-9_-]+)\s*=""")
# TOML decode errors end with "(at line L, column C)" (Python 3.11-3.13 give no attributes for it).
_TOML_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
MAX_EXAMPLE_DEPTH = 16

TOP_KEYS = {"pack", "lanes", "random", "capacity", "rules"}
PACK_KEYS = {"id", "version", "description", "reference", "include"}
MAX_INCLUDE_DEPTH = 4
LANE_KEYS = {"yellow", "red"}
RANDOM_KEYS = {"rate", "seed", "lane"}
CAPACITY_KEYS = {"yellow_per_hour", "red_per_hour", "near"}
RULE_KEYS = {"id", "description", "weight", "condition", "lane_floor", "valid_from", "valid_until", "enabled",
             "examples"}
EXAMPLE_KEYS = {"parcel", "state", "hit", "lane", "note"}


@dataclass
class Example:
    """A parcel (overrides of the base example parcel) and whether the rule must hit it."""

    parcel: dict
    hit: bool
    lane: str | None = None
    note: str = ""
    state: dict = field(default_factory=dict)   # state fields the example's parcel is screened with


@dataclass
class Rule:
    """One rule of a pack, its condition checked into IR."""

    id: str
    description: str
    weight: float
    condition: str
    ir: ir.Node | None
    lane_floor: int = 0
    valid_from: int = ir.TIME_MIN
    valid_until: int = ir.TIME_MAX
    enabled: bool = True
    examples: list[Example] = field(default_factory=list)


@dataclass
class Pack:
    """A loaded rule pack: identity, thresholds, random selection and rules."""

    path: str
    id: str
    version: str
    description: str
    yellow: float
    red: float
    random_rate: float
    seed: int
    random_lane: int
    rules: list[Rule]
    hash: str
    reference_dir: Path
    # R15: selections per event hour and lane a state partition may make (0 = unlimited), and the share of
    # it past which score-selected parcels are demoted (screener/state/capacity.py)
    capacity_per_hour: tuple[int, int, int] = (0, 0, 0)
    capacity_near: float = 0.8

    @property
    def active_rules(self) -> list[Rule]:
        """Enabled rules, in pack order: rule k of this list is bit k of the hit mask."""
        return [r for r in self.rules if r.enabled]


class _RuleLines:
    """Where each rule's keys sit in the pack file, so a problem cites the offending line."""

    def __init__(self, first: int) -> None:
        self.first = first                      # the [[rules]] header line
        self.keys: dict[str, int] = {}          # key -> line of `key = ...`
        self.examples: list[int] = []           # [[rules.examples]] header lines
        self.condition_starts_below = False     # `condition = """` with the text on the next line


def _locate_rules(text: str) -> dict[str, _RuleLines]:
    """Rule id -> the lines of its keys (first rule with that id), from the pack text."""
    found: dict[str, _RuleLines] = {}
    current: _RuleLines | None = None
    in_rule_table = False
    open_string = ""   # the delimiter of a multi-line string we are inside, if any
    for n, line in enumerate(text.splitlines(), start=1):
        if open_string:
            if line.count(open_string) % 2 == 1:
                open_string = ""
            continue
        for delimiter in ('"""', "'''"):
            if line.count(delimiter) % 2 == 1:
                open_string = delimiter
        stripped = line.strip()
        if stripped == "[[rules]]":
            current, in_rule_table = _RuleLines(n), True
            continue
        if stripped == "[[rules.examples]]" and current is not None:
            current.examples.append(n)
            in_rule_table = False
            continue
        if stripped.startswith("["):
            in_rule_table = False
            if not stripped.startswith("[rules."):
                current = None
            continue
        m = _KEY_LINE.match(line)
        if not (m and current is not None and in_rule_table):
            continue
        key = m.group(1)
        current.keys.setdefault(key, n)
        if key == "condition":
            current.condition_starts_below = line.split("=", 1)[1].split("#")[0].strip() in ('"""', "'''")
        if key == "id":
            idm = _ID_LINE.match(line)
            if idm and idm.group(1) not in found:
                found[idm.group(1)] = current
    return found


class _Checker:
    """Collects problems while reading the TOML document."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.problems: list[Problem] = []
        self.rules = _locate_rules(text)

    def add(self, message: str, rule_id: str | None = None, key: str | None = None) -> None:
        """Record one problem (`key`: the rule key it is about, to cite its line)."""
        self.problems.append(Problem(message, rule_id, key=key))

    def pack_line(self, p: Problem) -> int | None:
        """The pack file line a rule's problem is about: the key's line, the condition's own line."""
        where = self.rules.get(p.rule_id or "")
        if where is None:
            return None
        if p.key and p.key.startswith("examples["):
            k = int(p.key[len("examples["):-1])
            if k < len(where.examples):
                return where.examples[k]
            return where.keys.get("examples", where.first)
        line = where.keys.get(p.key or "id", where.keys.get("id", where.first))
        if p.key == "condition" and p.line is not None:
            line += p.line - 1 + (1 if where.condition_starts_below else 0)
        return line

    def unknown_keys(self, table: dict, allowed: set[str], where: str, rule_id: str | None = None,
                     at: str | None = None) -> None:
        """Report keys not in `allowed`, with a suggestion (`at`: the rule key they sit under, if not the rule)."""
        import difflib

        for key in table:
            if key not in allowed:
                hint = difflib.get_close_matches(key, sorted(allowed), n=1)
                tail = f" (did you mean {hint[0]!r}?)" if hint else f" (allowed: {', '.join(sorted(allowed))})"
                self.add(f"unknown key {key!r} in {where}{tail}", rule_id, at or key)

    def number(self, value, what: str, lo: float, hi: float, rule_id: str | None = None,
               default: float | None = None, key: str | None = None) -> float:
        """A number within [lo, hi], or the default after reporting a problem."""
        if value is None and default is not None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.add(f"{what} must be a number, got {value!r}", rule_id, key)
            return default if default is not None else lo
        if not lo <= value <= hi:
            self.add(f"{what} must be between {lo} and {hi}, got {value}", rule_id, key)
        return float(value)

    def text(self, value, what: str, rule_id: str | None = None, required: bool = True, key: str | None = None) -> str:
        """A string value, reporting a problem when missing or of another type."""
        if value is None:
            if required:
                self.add(f"{what} is required", rule_id, key)
            return ""
        if not isinstance(value, str):
            self.add(f"{what} must be a string, got {type(value).__name__}", rule_id, key)
            return ""
        return value


def _read_example(chk: _Checker, rule_id: str, k: int, raw) -> Example | None:
    where = f"examples[{k}]"

    def bad(message: str) -> None:
        chk.add(message, rule_id, where)

    if not isinstance(raw, dict):
        return bad(f"{where} must be a table")
    chk.unknown_keys(raw, EXAMPLE_KEYS, where, rule_id, at=where)
    parcel = raw.get("parcel", {})
    if isinstance(parcel, str):
        try:
            parcel = json.loads(parcel)
        except json.JSONDecodeError as exc:
            return bad(f"{where}.parcel is not valid JSON: {exc}")
        except RecursionError:
            return bad(f"{where}.parcel is nested deeper than {MAX_EXAMPLE_DEPTH} levels")
    if not isinstance(parcel, dict):
        return bad(f"{where}.parcel must be a table or a JSON object")
    if _depth(parcel) > MAX_EXAMPLE_DEPTH:
        return bad(f"{where}.parcel is nested deeper than {MAX_EXAMPLE_DEPTH} levels")
    items = parcel.get("items")
    if items is not None and not (isinstance(items, list) and all(isinstance(it, dict) for it in items)):
        return bad(f"{where}.parcel items must be an array of tables ({{ hs_code = ... }} per item)")
    hit = raw.get("hit")
    if not isinstance(hit, bool):
        return bad(f"{where}.hit must be true or false")
    lane = raw.get("lane")
    if lane is not None and lane not in LANES:
        return bad(f"{where}.lane must be one of {', '.join(LANES)}, got {lane!r}")
    state = raw.get("state", {})
    if not isinstance(state, dict):
        return bad(f"{where}.state must be a table of state fields (e.g. {{ consignee_24h_count = 5 }})")
    for key, value in state.items():
        if key not in STATE_NUMBER_FIELDS:
            return bad(f"{where}.state: unknown state field {key!r} (state fields: {', '.join(STATE_NUMBER_FIELDS)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return bad(f"{where}.state.{key} must be a number, got {type(value).__name__}")
    return Example(_jsonable(parcel), hit, lane, str(raw.get("note", "")),
                   {k: float(v) for k, v in state.items()})


def _depth(value, limit: int = MAX_EXAMPLE_DEPTH + 1) -> int:
    """Nesting depth of dicts and lists, counted without recursion and no further than `limit`."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, d)
            if d < limit:
                stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def _jsonable(value):
    """TOML dates/datetimes in example parcels -> ISO text, as a manifest would carry them."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


def _read_rule(chk: _Checker, k: int, raw, tables: Tables, shared: dict) -> Rule | None:
    if not isinstance(raw, dict):
        chk.add(f"rules[{k}] must be a table")
        return None
    rid = raw.get("id")
    if not isinstance(rid, str) or not RULE_ID.match(rid):
        chk.add(f"rules[{k}] id must match {RULE_ID.pattern}, got {rid!r}")
        rid = f"rules[{k}]"
    elif rid in RESERVED_IDS:
        chk.add(f"rule id {rid!r} is reserved", rid, "id")
    chk.unknown_keys(raw, RULE_KEYS, "a rule", rid)
    description = chk.text(raw.get("description", ""), "description", rid, key="description")
    if "weight" in raw:
        weight = chk.number(raw["weight"], "weight", 0.0, 1.0, rid, default=0.0, key="weight")
    else:
        chk.add("weight is required", rid)
        weight = 0.0
    condition = chk.text(raw.get("condition"), "condition", rid, key="condition")
    floor_name = raw.get("lane_floor", "green")
    if floor_name not in LANES:
        chk.add(f"lane_floor must be one of {', '.join(LANES)}, got {floor_name!r}", rid, "lane_floor")
        floor_name = "green"
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        chk.add(f"enabled must be true or false, got {enabled!r}", rid, "enabled")
        enabled = True
    bounds = []
    for key, end in (("valid_from", False), ("valid_until", True)):
        value = raw.get(key)
        try:
            if value is not None and not isinstance(value, (str, dt.date, dt.datetime)):
                raise TableError(f"not a date or datetime: {value!r}")
            bounds.append(parse_time(value, end=end))
        except TableError as exc:
            chk.add(f"{key}: {exc}", rid, key)
            bounds.append(ir.TIME_MIN if not end else ir.TIME_MAX)
    if bounds[0] >= bounds[1]:
        chk.add("valid_from is after valid_until: the rule can never fire", rid, "valid_from")
    node = None
    if condition:
        before = len(chk.problems)
        node = parse_condition(rid, condition, tables, chk.problems, shared)
        chk.problems[before:] = [replace(p, key="condition") if p.rule_id == rid else p for p in chk.problems[before:]]
    examples_raw = raw.get("examples", [])
    examples = []
    if not isinstance(examples_raw, list):
        chk.add("examples must be an array of tables ([[rules.examples]])", rid, "examples")
    else:
        for j, ex in enumerate(examples_raw):
            e = _read_example(chk, rid, j, ex)
            if e is not None:
                examples.append(e)
    return Rule(rid, description, weight, condition, node, LANES[floor_name], bounds[0], bounds[1], enabled,
                examples)


def _decode_toml(path: Path, data: bytes) -> tuple[str, Problem | None]:
    """The pack file's text, or the problem that stops it being read (BOM, a byte that is not UTF-8)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return "", Problem("the file starts with a UTF-8 byte-order mark (BOM); save it as UTF-8 without BOM",
                           where=f"{path} line 1 column 1")
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        line, col = text_position(data, exc.start)
        return "", Problem(f"byte 0x{data[exc.start]:02x} is not UTF-8; save the pack as UTF-8",
                           where=f"{path} line {line} column {col}")


def _included_rules(chk: _Checker, meta: dict, path: Path, reference_dir: Path, digest,
                    including: tuple[Path, ...]) -> list[Rule]:
    """Rules of the packs `[pack] include` names (paths relative to this pack), in order, each checked whole;
    their lanes, random and capacity sections are not used (the including pack's are)."""
    names = meta.get("include", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        chk.add(f"[pack] include must be a list of pack file paths, got {names!r:.80}")
        return []
    rules: list[Rule] = []
    for name in names:
        sub_path = (path.parent / name).resolve()
        if sub_path in including or len(including) >= MAX_INCLUDE_DEPTH:
            chk.add(f"[pack] include {name!r}: packs include each other (or nest over {MAX_INCLUDE_DEPTH} deep)")
            continue
        sub, problems = read_pack(sub_path, including)
        if problems:
            chk.problems += [replace(p, where=f"{name}: {p.where}".rstrip(": ")) for p in problems]
            continue
        if sub.reference_dir != reference_dir:
            chk.add(f"[pack] include {name!r}: its reference directory {sub.reference_dir} is not this pack's")
            continue
        rules += sub.rules
        digest.update(f"\0{name}\0{sub.hash}".encode())
    return rules


def read_pack(path: str | Path, _including: tuple[Path, ...] = ()) -> tuple[Pack | None, list[Problem]]:
    """Load and check a pack; returns (pack, []) or (None, every problem found)."""
    path = Path(path)
    try:
        raw_bytes = path.read_bytes()
    except OSError as exc:
        return None, [Problem(f"cannot read pack file: {exc.strerror or exc}")]
    text, problem = _decode_toml(path, raw_bytes)
    if problem is not None:
        return None, [problem]
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        at = _TOML_AT.search(message)
        line, col = (int(at.group(1)), int(at.group(2))) if at else (text.count("\n") + 1, 1)
        return None, [Problem(f"not valid TOML: {_TOML_AT.sub('', message)}", where=f"{path} line {line} column {col}")]
    except RecursionError:
        return None, [Problem("not valid TOML: arrays or tables nested too deeply", where=str(path))]
    chk = _Checker(str(path), text)
    chk.unknown_keys(doc, TOP_KEYS, "the pack file")
    meta = doc.get("pack") if isinstance(doc.get("pack"), dict) else {}
    if "pack" not in doc:
        chk.add("[pack] section with id and version is required")
    chk.unknown_keys(meta, PACK_KEYS, "[pack]")
    pack_id = chk.text(meta.get("id"), "[pack] id") if "pack" in doc else ""
    if pack_id and not RULE_ID.match(pack_id):
        chk.add(f"[pack] id must match {RULE_ID.pattern}, got {pack_id!r}")
    version = meta.get("version")
    if isinstance(version, (int, float)) and not isinstance(version, bool):
        version = str(version)
    version = chk.text(version, "[pack] version") if "pack" in doc else ""
    description = chk.text(meta.get("description", ""), "[pack] description")
    ref = chk.text(meta.get("reference", "reference"), "[pack] reference") or "reference"
    reference_dir = (path.parent / ref).resolve()
    if not reference_dir.is_dir():
        chk.add(f"reference directory {reference_dir} does not exist")

    lanes = doc.get("lanes") if isinstance(doc.get("lanes"), dict) else {}
    if "lanes" not in doc:
        chk.add("[lanes] section with yellow and red thresholds is required")
    chk.unknown_keys(lanes, LANE_KEYS, "[lanes]")
    yellow = chk.number(lanes.get("yellow"), "[lanes] yellow", 0.0, 1.0) if "lanes" in doc else 1.0
    red = chk.number(lanes.get("red"), "[lanes] red", 0.0, 1.0) if "lanes" in doc else 1.0
    if yellow <= 0.0 or red <= 0.0:
        chk.add("[lanes] thresholds must be above 0 (a threshold of 0 sends every parcel to that lane)")
    if yellow > red:
        chk.add(f"[lanes] yellow ({yellow}) must not be above red ({red})")

    rnd = doc.get("random", {})
    if not isinstance(rnd, dict):
        chk.add("[random] must be a table")
        rnd = {}
    chk.unknown_keys(rnd, RANDOM_KEYS, "[random]")
    rate = chk.number(rnd.get("rate", 0.0), "[random] rate", 0.0, 1.0)
    seed = rnd.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        chk.add(f"[random] seed must be an integer in [0, 2**64), got {seed!r}")
        seed = 0
    if rate > 0 and "seed" not in rnd:
        chk.add("[random] seed is required when rate is above 0 (selection must be reproducible)")
    random_lane = rnd.get("lane", "red")
    if random_lane not in ("yellow", "red"):
        chk.add(f"[random] lane must be yellow or red, got {random_lane!r}")
        random_lane = "red"

    cap = doc.get("capacity", {})
    if not isinstance(cap, dict):
        chk.add("[capacity] must be a table")
        cap = {}
    chk.unknown_keys(cap, CAPACITY_KEYS, "[capacity]")
    per_hour = []
    for lane in ("yellow", "red"):
        v = cap.get(f"{lane}_per_hour", 0)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            chk.add(f"[capacity] {lane}_per_hour must be a whole number of parcels, 0 or more, got {v!r}")
            v = 0
        per_hour.append(v)
    near = chk.number(cap.get("near", 0.8), "[capacity] near", 0.0, 1.0)

    digest = hashlib.sha256(raw_bytes)
    rules = _included_rules(chk, meta, path, reference_dir, digest, (*_including, path.resolve()))
    tables = Tables(reference_dir)
    shared: dict = {}
    raw_rules = doc.get("rules", [])
    if not isinstance(raw_rules, list):
        chk.add("rules must be an array of tables ([[rules]])")
        raw_rules = []
    for k, raw in enumerate(raw_rules):
        rule = _read_rule(chk, k, raw, tables, shared)
        if rule is not None:
            rules.append(rule)
    _lint(chk, rules, yellow, red)
    for name in sorted(tables.digests):
        digest.update(f"\0{name}\0{tables.digests[name]}".encode())
    chk.problems += tables.problems
    if chk.problems:
        problems = []
        for p in chk.problems:
            line = None if p.where else chk.pack_line(p)
            problems.append(replace(p, where=f"(pack line {line})") if line is not None else p)
        return None, problems
    pack = Pack(str(path), pack_id, version, description, yellow, red, rate, seed, LANES[random_lane], rules,
                digest.hexdigest()[:16], reference_dir, (0, *per_hour), near)
    return pack, []


def _lint(chk: _Checker, rules: list[Rule], yellow: float, red: float) -> None:
    seen: dict[str, int] = {}
    for r in rules:
        seen[r.id] = seen.get(r.id, 0) + 1
    for rid, count in seen.items():
        if count > 1:
            chk.add(f"duplicate rule id ({count} rules share it)", rid)
    active = [r for r in rules if r.enabled]
    if not active:
        chk.add("the pack has no enabled rules")
    # Noisy-or: the highest score any parcel can get is with every rule firing.
    keep = 1.0
    for r in active:
        keep *= 1.0 - r.weight
    best = 1.0 - keep
    for name, threshold in (("yellow", yellow), ("red", red)):
        if threshold > best + 1e-12:
            chk.add(f"[lanes] {name} threshold {threshold} is unreachable: all enabled rules together "
                    f"score at most {best:.6f}")
    for r in active:
        if r.weight == 0.0 and r.lane_floor == 0:
            chk.add("weight 0 and no lane_floor: the rule can never change a lane", r.id)


def load_pack(path: str | Path) -> Pack:
    """The checked pack at `path`; raises PackError listing every problem when there is any."""
    pack, problems = read_pack(path)
    if problems:
        raise PackError(str(path), problems)
    return pack
