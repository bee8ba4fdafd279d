#!/usr/bin/env python3
"""Verify audit exports without audit: a reference verifier for auditors.

Needs Python 3.8 or later and the `cryptography` package (`pip install cryptography`,
or Debian's `apt-get install python3-cryptography`); nothing else.

    python3 verify_export.py DIR... --public-key KEY [--allow-unsigned]
    python3 verify_export.py DIR... --trust-embedded-key [--allow-unsigned]

DIR is an export directory, or a folder of run directories (NAME-000001, ...), which
are then checked one by one and as a chain. A folder is checked all the way down, as
`audit verify-export` checks it: a directory in it with a manifest.json, named as a run,
or holding no directory is an export (one without manifest.json is reported: it is not
a complete export); another directory is a folder, checked the same way; a file is
reported; only names beginning with "." are passed over. KEY is the Ed25519 public key
you were given: base64 (as `audit keygen` prints it), hex, or a file holding it.

For each directory it checks what `audit verify-export` checks without a database:
the Ed25519 signature of manifest.json; every file's size and SHA-256 and the set of
files (nothing added, nothing missing); the row counts; for events, seq order, range
and filters, and the event hash chain recomputed from the rows (the byte layout of
docs/events.md, with this file's own canonical JSON text); that a directory named as
a run (NAME-000042) holds that run; and, between runs of one name, the links: run
numbers consecutive, each manifest naming the previous manifest's SHA-256 and the
log's hash at the previous run's last seq (its chain head), incremental ranges
consecutive.

Prints one JSON line per export that checks out; names every problem on stderr.
Exit status: 0 all verified, 4 a problem, 64 a usage error, 65 a bad argument
(a directory that does not exist, a key that is not a key), 1 anything else.
"""

import argparse
import base64
import binascii
import hashlib
import json
import math
import os
import re
import struct
import sys

EXIT_OK, EXIT_FAILURE, EXIT_INTEGRITY, EXIT_USAGE, EXIT_INVALID = 0, 1, 4, 64, 65
MANIFEST_FORMAT = "audit.export.v1"
EVENT_FIELDS = ["seq", "id", "stream", "version", "type", "occurred_at", "recorded_at"]
INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
MAX_DEPTH = 128


class Invalid(Exception):
    """A text that is not what it must be (JSON, a time, a key)."""


# --- Canonical JSON: the text audit stores and hashes for `data` and `meta` --------

def parse_json(text):
    """Reads one JSON text as audit does: strict RFC 8259, duplicate keys and NaN or
    infinite numbers refused; integers within 64 bits stay int, every other number is
    a float (an integer literal beyond 64 bits too, as in JavaScript and Lua)."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as error:
            raise Invalid("invalid UTF-8: %s" % error)

    def finite(literal):
        value = float(literal)
        if not math.isfinite(value):
            raise Invalid("number out of range: %s" % literal)
        return value

    def integer(literal):
        value = int(literal)
        return value if INT64_MIN <= value <= INT64_MAX else finite(literal)

    def no_duplicates(pairs):
        result = {}
        for key, value in pairs:
            if key in result:
                raise Invalid('duplicate key "%s" in object' % key)
            result[key] = value
        return result

    def constant(name):
        raise Invalid("%s is not JSON" % name)

    try:
        return json.loads(text, object_pairs_hook=no_duplicates, parse_int=integer, parse_float=finite,
                          parse_constant=constant)
    except (ValueError, RecursionError) as error:
        raise Invalid(str(error))


def swift_double(x):
    """A float as audit writes it (Swift's Double.description): the shortest digits that
    read back to the same float, which Python's repr also gives, laid out as decimals
    when 1e-4 <= |x| <= 2**53 (with `.0` when integral), otherwise as d.ddde+XX or
    d.ddde-XX (at least two exponent digits); -0.0 keeps its sign."""
    if not math.isfinite(x):
        raise Invalid("canonical JSON has no NaN or infinity")
    if x == 0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    sign = "-" if x < 0 else ""
    mantissa, _, exponent = repr(abs(x)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    every = whole + fraction
    leading = len(every) - len(every.lstrip("0"))
    digits = every.strip("0")
    # x = d.ddd * 10**point, d the first significant digit.
    point = len(whole) - 1 - leading + (int(exponent) if exponent else 0)
    if point < -4 or abs(x) > 2.0 ** 53:
        head, tail = digits[0], digits[1:]
        return "%s%s%se%s%02d" % (sign, head, "." + tail if tail else "", "-" if point < 0 else "+", abs(point))
    if point < 0:
        return sign + "0." + "0" * (-point - 1) + digits
    integral = digits[:point + 1].ljust(point + 1, "0")
    return sign + integral + "." + (digits[point + 1:] or "0")


def quote(text):
    """A JSON string as audit writes it: UTF-8, escaping only `"`, `\\` and control
    characters (\\n \\r \\t \\b \\f, others \\u00XX in lower-case hex)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid("unpaired surrogate in a string")
    short = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
    return '"' + "".join(short.get(c) or ("\\u%04x" % ord(c) if ord(c) < 0x20 else c) for c in text) + '"'


def canonical(value, depth=0):
    """The canonical text: object members sorted by the UTF-8 bytes of their keys, no
    whitespace, integers as integers, floats by swift_double, strings by quote."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return swift_double(value)
    if isinstance(value, str):
        return quote(value)
    if depth >= MAX_DEPTH:
        raise Invalid("nesting deeper than %d levels" % MAX_DEPTH)
    if isinstance(value, list):
        return "[" + ",".join(canonical(v, depth + 1) for v in value) + "]"
    members = sorted(value.items(), key=lambda kv: kv[0].encode("utf-8", "surrogatepass"))
    return "{" + ",".join(quote(k) + ":" + canonical(v, depth + 1) for k, v in members) + "}"


# --- The event hash chain (docs/events.md) --------------------------------------------

GENESIS = bytes(32)


def event_hash(previous, seq, event_id, stream, version, event_type, occurred_at, recorded_at, data, meta):
    """hash(n) = SHA-256("audit.event.v1" 0x00, hash(n-1), seq and version as 8-byte
    big-endian, then id, stream, type, occurred_at, recorded_at, data, meta each as a
    4-byte big-endian length and its UTF-8 bytes)."""
    h = hashlib.sha256(b"audit.event.v1\x00")
    h.update(previous)
    h.update(struct.pack(">qq", seq, version))
    for field in (event_id, stream, event_type, occurred_at, recorded_at, data, meta):
        raw = field.encode("utf-8")
        h.update(struct.pack(">I", len(raw)))
        h.update(raw)
    return h.digest()


# --- Times, as the manifest writes them ----------------------------------------------

TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z")


def days_from_civil(y, m, d):
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * ((m + 9) % 12) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def fixed_time(text):
    """An RFC 3339 time in audit's fixed-width UTC form YYYY-MM-DDTHH:MM:SS.sssZ
    (the offset applied, digits beyond milliseconds truncated)."""
    match = TIME.match(text) if isinstance(text, str) else None
    if not match:
        raise Invalid("not an RFC 3339 time")
    y, mo, d, h, mi, s = (int(g) for g in match.groups()[:6])
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    if not 1 <= mo <= 12 or not 1 <= d <= [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][mo - 1]:
        raise Invalid("date out of range")
    if h > 23 or mi > 59 or s > 60:
        raise Invalid("time of day out of range")
    millis = 59999 if s == 60 else s * 1000 + int(((match.group(7) or "") + "000")[:3])
    offset = 0
    if match.group(9):
        oh, om = int(match.group(10)), int(match.group(11))
        if oh > 23 or om > 59:
            raise Invalid("zone offset out of range")
        offset = (oh * 60 + om) * (-1 if match.group(9) == "-" else 1)
    ms = days_from_civil(y, mo, d) * 86400000 + h * 3600000 + mi * 60000 + millis - offset * 60000
    days, rest = divmod(ms, 86400000)
    if not days_from_civil(0, 1, 1) <= days <= days_from_civil(9999, 12, 31):
        raise Invalid("outside years 0000-9999 in UTC")
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day, month = doy - (153 * mp + 2) // 5 + 1, mp + 3 if mp < 10 else mp - 9
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (yoe + era * 400 + (month <= 2), month, day, rest // 3600000,
                                                   rest // 60000 % 60, rest // 1000 % 60, rest % 1000)


# --- The manifest ------------------------------------------------------------------

class Manifest:
    """manifest.json read as audit reads it, naming the field that is wrong."""

    def __init__(self, raw):
        try:
            value = parse_json(raw)
        except Invalid as error:
            raise Invalid("manifest.json: not valid JSON: %s" % error)
        if self.string(value, "format") != MANIFEST_FORMAT:
            raise Invalid('manifest.json: not an audit export manifest (format must be "%s")' % MANIFEST_FORMAT)
        self.name = self.string(value, "name")
        self.run = self.int(value, "run")
        self.time(value, "created_at")
        self.string(self.object(value, "engine"), "version")
        self.kind = self.string(value, "kind")
        if self.kind not in ("events", "query"):
            raise self.fail("kind", "must be events or query")
        self.format = self.string(value, "data_format")
        if self.format not in ("jsonl", "csv"):
            raise self.fail("data_format", "must be jsonl or csv")
        s = self.object(value, "selection")
        self.from_seq, self.to_seq = self.int(s, "from_seq"), self.int(s, "to_seq")
        self.as_of = self.time(s, "as_of", optional=True)
        self.time(s, "known_at", optional=True)
        self.stream, self.type = self.optional_string(s, "stream"), self.optional_string(s, "type")
        self.incremental = s.get("incremental") is True
        if not isinstance(value.get("files"), list):
            raise self.fail("files", "must be an array")
        self.files = [(self.string(f, "path"), None if f.get("rows", 0) is None else self.int(f, "rows"),
                       self.int(f, "bytes"), self.string(f, "sha256")) for f in value["files"]]
        self.rows = self.int(value, "rows")
        c = self.object(value, "chain")
        self.chain_seq, self.chain_head, self.chain_before = self.int(c, "seq"), self.string(c, "head"), self.string(c, "before")
        self.previous = None
        p = value.get("previous")
        if p is not None:
            self.previous = {"run": self.int(p, "run"), "manifest_sha256": self.string(p, "manifest_sha256"),
                             "chain_seq": None if "chain_seq" not in p else self.int(p, "chain_seq"),
                             "chain_head": self.optional_string(p, "chain_head")}
        signing = value.get("signing")
        self.public_key = None if signing is None else self.string(signing, "public_key")
        self.time(value, "scheduled_for", optional=True)
        q = value.get("query")
        if q is not None:
            self.string(q, "name")
            self.string(q, "sql_sha256")
            if not isinstance(q.get("parameters"), dict):
                raise self.fail("query.parameters", "must be an object")
            if not isinstance(q.get("projections"), list):
                raise self.fail("query.projections", "must be an array")
            for used in q["projections"]:
                self.string(used, "name"), self.int(used, "version"), self.string(used, "code_hash"), self.int(used, "position")

    @staticmethod
    def fail(field, problem):
        return Invalid('manifest.json: "%s" %s' % (field, problem))

    def object(self, value, key):
        if not isinstance(value, dict) or not isinstance(value.get(key), dict):
            raise self.fail(key, "must be an object")
        return value[key]

    def string(self, value, key):
        if not isinstance(value, dict) or not isinstance(value.get(key), str):
            raise self.fail(key, "must be a string")
        return value[key]

    def optional_string(self, value, key):
        found = value.get(key) if isinstance(value, dict) else None
        if found is not None and not isinstance(found, str):
            raise self.fail(key, "must be a string or null")
        return found

    def int(self, value, key):
        found = value.get(key) if isinstance(value, dict) else None
        if isinstance(found, bool) or not isinstance(found, int):
            raise self.fail(key, "must be an integer")
        return found

    def time(self, value, key, optional=False):
        text = self.optional_string(value, key)
        if text is None:
            if optional:
                return None
            raise self.fail(key, "must be a time")
        try:
            return fixed_time(text)
        except Invalid as error:
            raise self.fail(key, "is not a time: %s" % error)


def run_claim(directory):
    """The export name and run a directory's name claims (NAME-000042: at least six
    digits after the last '-'), or None."""
    base = os.path.basename(os.path.normpath(directory))
    name, dash, digits = base.rpartition("-")
    if not dash or not name or len(digits) < 6 or not re.fullmatch(r"[0-9]+", digits) or int(digits) > INT64_MAX:
        return None
    return name, int(digits)


# --- One export directory ----------------------------------------------------------

def read_file(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def csv_records(raw, source):
    """RFC 4180 records, as audit reads them: LF or CRLF line ends, quoted fields may
    span lines, a quote opens a quoted field only at the field's start."""
    records, fields, field = [], [], bytearray()
    quoted, at_start, line, quote_line, i = False, True, 1, 0, 0
    while i < len(raw):
        c = raw[i]
        if quoted:
            if c == 0x22:
                if i + 1 < len(raw) and raw[i + 1] == 0x22:
                    field.append(0x22)
                    i += 2
                    continue
                quoted = False
            else:
                line += c == 0x0A
                field.append(c)
        elif c == 0x22 and at_start:
            quoted, quote_line, at_start = True, line, False
        elif c == 0x2C:
            fields.append(field.decode("utf-8", "replace"))
            field, at_start = bytearray(), True
        elif c == 0x0D and i + 1 < len(raw) and raw[i + 1] == 0x0A:
            pass
        elif c == 0x0A:
            fields.append(field.decode("utf-8", "replace"))
            records.append(fields)
            fields, field, at_start = [], bytearray(), True
            line += 1
        else:
            field.append(c)
            at_start = False
        i += 1
    if quoted:
        raise Invalid("%s:%d: a quoted field is never closed" % (source, quote_line))
    if field or fields:
        fields.append(field.decode("utf-8", "replace"))
        records.append(fields)
    return records


def event_fields(line):
    """The 10 stored fields of an exported JSONL event, as text in their stored form:
    data and meta as their canonical text. Empty when the line is not an event."""
    try:
        value = parse_json(line)
    except Invalid:
        return []
    if not isinstance(value, dict) or "data" not in value or "meta" not in value:
        return []

    def text(key):
        v = value.get(key)
        return v if isinstance(v, str) else str(v) if isinstance(v, int) and not isinstance(v, bool) else None

    fields = [text(key) for key in EVENT_FIELDS + ["hash"]]
    if None in fields:
        return []
    try:
        return fields[:7] + [canonical(value["data"]), canonical(value["meta"]), fields[7]]
    except Invalid:
        return []


def data_rows(raw, path, data_format):
    """(file, line, fields) of each data row of one file (a CSV header is not a row)."""
    if data_format == "csv":
        return [(path, i + 1, fields) for i, fields in enumerate(csv_records(raw, path)) if i > 0]
    rows = []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if line:
            rows.append((path, number, event_fields(line)))
    return rows


def int64(text):
    return int(text) if re.fullmatch(r"[+-]?[0-9]+", text) and INT64_MIN <= int(text) <= INT64_MAX else None


def check_events(m, rows, problems, notes):
    """Seq order and range, the selection's filters, and the hash chain of an export of
    every event in a seq range. Returns whether the chain was recomputed."""
    previous_seq, chain = m.from_seq - 1, bytes.fromhex(m.chain_before) if re.fullmatch(r"([0-9a-fA-F]{2})*", m.chain_before) else b""
    contiguous = m.stream is None and m.type is None and m.as_of is None
    for path, line, f in rows:
        at = "%s:%d" % (path, line)
        seq, version = (int64(f[0]), int64(f[3])) if len(f) == 10 else (None, None)
        if seq is None or version is None:
            problems.append("%s: not an exported event (expected the 10 stored fields)" % at)
            return False
        if seq <= previous_seq:
            problems.append("%s: seq %d is out of order (after seq %d)" % (at, seq, previous_seq))
            return False
        if seq > m.to_seq:
            problems.append("%s: seq %d is past the export's range (to_seq %d)" % (at, seq, m.to_seq))
            return False
        if contiguous and seq != previous_seq + 1:
            problems.append("%s: seq %d is missing (the next exported event is seq %d): an event was removed" % (at, previous_seq + 1, seq))
            return False
        if m.stream is not None and f[2] != m.stream:
            problems.append("%s: seq %d is of stream %s, outside the selection (stream %s)" % (at, seq, f[2], m.stream))
        if m.type is not None and f[4] != m.type:
            problems.append("%s: seq %d is of type %s, outside the selection (type %s)" % (at, seq, f[4], m.type))
        if m.as_of is not None and f[5] > m.as_of:
            problems.append("%s: seq %d occurred at %s, after the selection's as-of %s" % (at, seq, f[5], m.as_of))
        if contiguous:
            digest = event_hash(chain, seq, f[1], f[2], version, f[4], f[5], f[6], f[7], f[8])
            if digest.hex() != f[9]:
                problems.append("%s: seq %d does not match its hash: the row was changed (or the one before it)" % (at, seq))
                return False
            chain = digest
        previous_seq = seq
    if not contiguous:
        notes.append("the selection is filtered, so the hash chain cannot be recomputed from the export alone")
        return False
    if previous_seq != max(m.to_seq, m.from_seq - 1):
        problems.append("the export ends at seq %d, but its range ends at seq %d: events were removed from the end" % (previous_seq, m.to_seq))
    elif chain.hex() != m.chain_head:
        problems.append("the exported events' hash chain ends at %s, not at the manifest's chain head %s" % (chain.hex(), m.chain_head))
    else:
        return True
    return False


def b64decode(text):
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def signature_valid(key, signature, message):
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(signature, message)
        return True
    except (InvalidSignature, ValueError):
        return False


def check_signature(directory, m, raw, trusted, allow_unsigned, problems):
    """'trusted', 'untrusted_key' or 'unsigned'; adds what does not hold to problems.
    `trusted` is the auditor's raw public key, or None for the manifest's own key."""
    text = read_file(os.path.join(directory, "manifest.sig"))
    if text is None:
        if m.public_key is not None:
            problems.append("manifest.json names a signing key but manifest.sig is missing: the signature was removed")
        elif not allow_unsigned:
            problems.append("the export is not signed (no manifest.sig), so it proves nothing about who made it; "
                            "give --allow-unsigned to check an unsigned export")
        return "unsigned"
    signature = b64decode(text.decode("utf-8", "replace").strip())
    if signature is None or len(signature) != 64:
        problems.append("manifest.sig is not an Ed25519 signature (expected 64 bytes in base64)")
        return "unsigned"
    if trusted is not None:
        named = m.public_key
        if named is not None and named != base64.b64encode(trusted).decode():
            problems.append("manifest.json names the signing key %s, not the trusted key %s: it was signed by someone else"
                            % (named, base64.b64encode(trusted).decode()))
        if not signature_valid(trusted, signature, raw):
            problems.append("manifest.sig is not a valid signature of manifest.json by the trusted key: the manifest was "
                            "changed after it was signed, or it was signed by another key")
        return "trusted"
    key = b64decode(m.public_key) if m.public_key is not None else None
    if key is None or len(key) != 32:
        problems.append("manifest.sig is present but manifest.json names no valid signing key")
        return "unsigned"
    if not signature_valid(key, signature, raw):
        problems.append("manifest.sig is not a valid signature of manifest.json: the manifest was changed after it was signed")
    return "untrusted_key"


def check_files(directory, m, problems):
    """Every listed file's size and SHA-256, and no file that is not listed."""
    listed = {"manifest.json", "manifest.sig"}
    for path, _, size, sha256 in m.files:
        if "/" in path or path.startswith("."):
            problems.append("manifest.json lists %s, which is not a plain file name in the export" % path)
            continue
        listed.add(path)
        raw = read_file(os.path.join(directory, path))
        if raw is None:
            problems.append("%s is missing (the manifest lists it)" % path)
            continue
        digest = hashlib.sha256(raw).hexdigest()
        if len(raw) != size or digest != sha256:
            swapped = [other for other, _, _, h in m.files if other != path and h == digest]
            problems.append("%s: its content does not match the manifest (%d bytes, SHA-256 %s; the manifest says %d bytes, SHA-256 %s)%s"
                            % (path, len(raw), digest, size, sha256,
                               ": it holds what the manifest lists as %s (files were swapped)" % swapped[0] if swapped
                               else ": it was changed after the export"))
    for extra in sorted(set(os.listdir(directory)) - listed):
        problems.append("%s is not listed in the manifest: a file was added to the export" % extra)


class Verified:
    """An export that checked out."""

    def __init__(self, directory, manifest, sha256, signature, chain_recomputed, notes):
        self.directory, self.manifest, self.sha256 = directory, manifest, sha256
        self.signature, self.chain_recomputed, self.notes = signature, chain_recomputed, notes

    def json(self):
        m = self.manifest
        return canonical({
            "ok": True, "directory": self.directory, "name": m.name, "run": m.run, "rows": m.rows, "files": len(m.files),
            "from_seq": m.from_seq, "to_seq": m.to_seq, "chain_head": m.chain_head, "manifest_sha256": self.sha256,
            "signature": self.signature, "chain_recomputed": self.chain_recomputed, "checked_against_database": False,
            "notes": self.notes})


def verify_directory(directory, trusted, allow_unsigned):
    """Checks one export directory: a Verified, or the list of its problems."""
    problems, notes = [], []
    raw = read_file(os.path.join(directory, "manifest.json"))
    if raw is None:
        return ["no manifest.json: this is not a complete export (an interrupted export leaves none), or it was removed"]
    try:
        m = Manifest(raw)
    except Invalid as error:
        return [str(error)]
    claim = run_claim(directory)
    if claim is not None and claim != (m.name, m.run):
        problems.append("the directory's name says export %s, run %d, but its manifest is export %s, run %d: "
                        "run directories were renamed or swapped" % (claim[0], claim[1], m.name, m.run))
    signature = check_signature(directory, m, raw, trusted, allow_unsigned, problems)
    before_files = len(problems)
    check_files(directory, m, problems)
    chain_recomputed = False
    # The rows are read when the files are the ones the manifest lists (even if the
    # manifest itself is forged: the rows then show what was changed).
    if len(problems) == before_files:
        rows, total = [], 0
        for path, count, _, _ in m.files:
            if count is None:
                continue
            raw_rows = read_file(os.path.join(directory, path))
            if raw_rows is None:
                continue
            try:
                found = data_rows(raw_rows, path, m.format)
            except Invalid as error:
                problems.append(str(error))
                continue
            if len(found) != count:
                problems.append("%s: %d rows, but the manifest says %d: rows were removed or added" % (path, len(found), count))
            total += len(found)
            rows += found
        if total != m.rows:
            problems.append("the data files hold %d rows, but the manifest says %d" % (total, m.rows))
        if m.kind == "events":
            chain_recomputed = check_events(m, rows, problems, notes)
    if signature == "unsigned":
        notes.append("the export is not signed: it proves nothing about who made it (accepted: --allow-unsigned)")
    notes.append("not compared with the database (audit verify-export --db checks the chain head and the rows against the store)")
    if problems:
        return problems
    return Verified(directory, m, hashlib.sha256(raw).hexdigest(), signature, chain_recomputed, notes)


# --- Runs of one export: the chain between them --------------------------------------

class Unverified:
    """A directory named as a run (NAME-000002) that did not verify."""

    def __init__(self, name, run, directory, has_manifest):
        self.name, self.run, self.directory = name, run, directory
        self.state = "does not verify" if has_manifest else "has no manifest.json"


def missing_ranges(first, last, present):
    """The ranges (lo, hi) of first..last not in present (without walking the range:
    run numbers come from manifests)."""
    ranges, following = [], first
    if first > last:
        return ranges
    for run in sorted(set(present)):
        if run < following or run > last:
            continue
        if run > following:
            ranges.append((following, run - 1))
        if run == last:
            return ranges
        following = run + 1
    ranges.append((following, last))
    return ranges


def describe_runs(lo, hi):
    return "run %d is" % lo if lo == hi else "runs %d…%d are" % (lo, hi)


def chain_problems(runs, unverified=()):
    """The links that do not hold between verified runs, by export name and run; a run
    missing between two is named as missing, or as there but not verified."""
    problems = []
    names = sorted({r.manifest.name for r in runs})
    for name in names:
        ordered = sorted((r for r in runs if r.manifest.name == name), key=lambda r: r.manifest.run)
        for earlier, later in zip(ordered, ordered[1:]):
            a, b = earlier.manifest, later.manifest
            at = "export %s, run %d (%s)" % (name, b.run, later.directory)
            if b.run == a.run:
                problems.append("%s: two directories claim run %d (%s)" % (at, b.run, earlier.directory))
                continue
            if b.run != a.run + 1:
                here = sorted((u for u in unverified if u.name == name and a.run < u.run < b.run), key=lambda u: u.run)
                for lo, hi in missing_ranges(a.run + 1, b.run - 1, [u.run for u in here]):
                    problems.append("%s: %s missing between it and run %d" % (at, describe_runs(lo, hi), a.run))
                for u in here:
                    problems.append("%s: run %d (%s) is between it and run %d but %s: the chain through it cannot be checked"
                                    % (at, u.run, u.directory, a.run, u.state))
                continue
            previous = b.previous
            if previous is None or previous["run"] != a.run:
                problems.append("%s: its manifest does not name run %d as the previous run" % (at, a.run))
                continue
            if previous["manifest_sha256"] != earlier.sha256:
                problems.append("%s: it names the previous manifest %s, but run %d's manifest.json hashes to %s: run %d was replaced"
                                % (at, previous["manifest_sha256"], a.run, earlier.sha256, a.run))
            consecutive = a.incremental and b.incremental
            if consecutive and b.from_seq != a.to_seq + 1:
                problems.append("%s: it starts at seq %d but run %d ended at seq %d: %s"
                                % (at, b.from_seq, a.run, a.to_seq, "a gap" if b.from_seq > a.to_seq + 1 else "an overlap"))
            # The log's hash at the earlier run's last seq, as the later run found it (for
            # consecutive ranges, that is where the later one's chain begins).
            found = None
            if previous["chain_seq"] is not None and previous["chain_head"] is not None:
                found = (previous["chain_seq"], previous["chain_head"])
            elif consecutive and b.from_seq == a.to_seq + 1:
                found = (a.chain_seq, b.chain_before)
            if found is not None:
                if found[0] != a.chain_seq:
                    problems.append("%s: it names seq %d as run %d's last, but run %d's chain ends at seq %d"
                                    % (at, found[0], a.run, a.run, a.chain_seq))
                elif found[1] != a.chain_head:
                    problems.append("%s: the log was rewritten between run %d and run %d: run %d found the hash %s at seq %d, "
                                    "but run %d's chain head there is %s" % (at, a.run, b.run, b.run, found[1], found[0], a.run, a.chain_head))
    return problems


def first_run_notes(runs, folder, unverified=()):
    """Without the database, a series whose first run here is not run 1 is noted
    (retention may have removed the earlier runs; audit verify-export --db tells),
    naming the earlier runs that are here but did not verify apart from the others."""
    for name in sorted({r.manifest.name for r in runs}):
        first = min((r for r in runs if r.manifest.name == name), key=lambda r: r.manifest.run)
        lowest = first.manifest.run
        if lowest <= 1:
            continue
        here = sorted((u for u in unverified if u.name == name and 1 <= u.run < lowest), key=lambda u: u.run)
        missing = missing_ranges(1, lowest - 1, [u.run for u in here])
        parts = [describe_runs(lo, hi) + " not here (removed by retention, or missing)" for lo, hi in missing]
        parts += ["run %d (%s) is here but %s" % (u.run, u.directory, u.state) for u in here]
        opening = ("export %s starts at run %d in %s" % (name, lowest, folder) if not here
                   else "the first run of export %s in %s that verifies is run %d" % (name, folder, lowest))
        one = len(missing) == 1 and missing[0][0] == missing[0][1]
        tail = "; audit verify-export --db checks that %s was recorded as removed" % ("it" if one else "each") if missing else ""
        first.notes.append(opening + ": " + "; ".join(parts) + tail)


def expand(paths):
    """Each argument as (folder or None, [export directories]), grouped by the folder
    that holds them, and the problems of files found beside them. In a folder, nothing
    but names beginning with "." is passed over: a directory with a manifest.json, named
    as a run, or holding no directory is an export (one without a manifest is reported);
    another directory is a folder, walked the same way; anything else is reported."""
    groups, strays = [], []

    def entries(folder):
        try:
            return sorted(e for e in os.listdir(folder) if not e.startswith("."))
        except OSError:
            return []

    def is_export(path):
        return (os.path.exists(os.path.join(path, "manifest.json")) or run_claim(path) is not None
                or not any(os.path.isdir(os.path.join(path, e)) for e in entries(path)))

    for path in paths:
        if not os.path.isdir(path):
            raise Invalid("%s: no such export directory" % path)
        if is_export(path):
            groups.append((None, [path]))
            continue
        walked = set()  # a link back up the tree is walked once

        def walk(folder):
            real = os.path.realpath(folder)
            if real in walked:
                return
            walked.add(real)
            exports, folders = [], []
            for entry in entries(folder):
                child = folder + "/" + entry
                if not os.path.isdir(child):
                    strays.append((child, ["not a directory: a folder of exports holds only export directories (and folders of them)"]))
                elif is_export(child):
                    exports.append(child)
                else:
                    folders.append(child)
            if exports:
                groups.append((folder, exports))
            for child in folders:
                walk(child)
        walk(path)
    return groups, strays


def public_key(argument):
    """The raw 32-byte key from base64, hex, or a file holding either."""
    text = argument.strip()
    if os.path.exists(text):
        raw = read_file(text)
        if raw is None:
            raise Invalid("cannot read the public key file %s" % text)
        text = raw.decode("utf-8", "replace").strip()
    key = b64decode(text)
    if key is not None and len(key) == 32:
        return key
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text)
    raise Invalid("%s is not an Ed25519 public key: give the 32-byte key in base64 (as `audit keygen` prints it) or hex, "
                  "or a file holding it" % argument)


def main(argv):
    parser = argparse.ArgumentParser(
        prog="verify_export.py", description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 verified, 4 a problem, 64 a usage error, 65 a bad argument.")
    parser.add_argument("directories", nargs="+", metavar="DIR", help="export directories, or folders of them")
    parser.add_argument("--public-key", metavar="KEY", help="the trusted Ed25519 public key: base64, hex, or a file holding it")
    parser.add_argument("--trust-embedded-key", action="store_true",
                        help="without --public-key: check each signature with the key its own manifest names "
                             "(proves nothing about who signed)")
    parser.add_argument("--allow-unsigned", action="store_true", help="accept exports that are not signed")
    args = parser.parse_args(argv)  # a usage error exits 2; main() turns it into 64
    if args.public_key is None and not args.trust_embedded_key:
        parser.error("give --public-key KEY, the key you were given by whoever signs the exports (or --trust-embedded-key "
                     "to check each signature with the key its manifest names, which proves nothing about who signed)")
    if args.public_key is not None and args.trust_embedded_key:
        parser.error("--public-key and --trust-embedded-key exclude each other")
    try:
        import cryptography  # noqa: F401  (checked before any export is read)
    except ImportError:
        print("verify_export.py: needs the cryptography package: pip install cryptography "
              "(or apt-get install python3-cryptography)", file=sys.stderr)
        return EXIT_FAILURE
    try:
        trusted = None if args.public_key is None else public_key(args.public_key)
        groups, strays = expand(args.directories)
    except Invalid as error:
        print("verify_export.py: %s" % error, file=sys.stderr)
        return EXIT_INVALID

    def does_not_verify(directory, problems):
        return "export %s does not verify:\n%s" % (directory, "\n".join("  - " + p for p in problems))

    verified, unverified = [], []
    failures = [does_not_verify(path, problems) for path, problems in strays]
    for folder, directories in groups:
        runs, failed = [], []
        for directory in directories:
            result = verify_directory(directory, trusted, args.allow_unsigned)
            if isinstance(result, Verified):
                runs.append(result)
            else:
                failures.append(does_not_verify(directory, result))
                claim = run_claim(directory)
                if claim is not None:
                    failed.append(Unverified(claim[0], claim[1], directory, os.path.exists(os.path.join(directory, "manifest.json"))))
        if folder is not None and runs:
            first_run_notes(runs, folder, failed)
        verified += runs
        unverified += failed
    for v in verified:
        print(v.json())
    links = chain_problems(verified, unverified)
    if links:
        failures.append("the chain of runs does not hold:\n" + "\n".join("  - " + p for p in links))
    for failure in failures:
        print("verify_export.py: " + failure, file=sys.stderr)
    return EXIT_INTEGRITY if failures else EXIT_OK


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except SystemExit as exit:
        sys.exit(EXIT_USAGE if exit.code == 2 else exit.code)
