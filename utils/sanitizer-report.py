#!/usr/bin/env python3
"""Summarise and judge the sanitizer reports in server logs.

    utils/sanitizer-report.py [--tree TREE --pristine DIR] [--ours-only]
                              [--out FILE] [--max-upstream N] FILE...

Reads every FILE (server stderr/stdout, ThreadSanitizer log_path files) and
finds each AddressSanitizer, LeakSanitizer (one report per leak),
UndefinedBehaviorSanitizer ("runtime error:") and ThreadSanitizer report.
Reports with the same kind and the same function at the top of each access
stack (the access and the previous access of a race, the use, free and
allocation of a use-after-free, ...) form one group, printed once with how
many times and in how many files it was seen and the top frames of each
stack. Each report is classified:

  OURS      a frame of an access stack in our code, src/tls_ocsp*.c / .h,
            src/tls_crl*.c / .h
  HOOK      a frame of an access stack on a line that patches/series adds to
            an upstream file (needs --tree, the assembled tree the binary was
            built from, and --pristine, unpacked pristine upstream)
  via-ours  OURS or HOOK, but upstream's own code is at the top of every
            access stack and the same race (same kind, same top functions)
            is also reported without any of our frames: an upstream race our
            code merely reaches (upstream's per-thread memory counters, read
            by the main thread without atomics, say)
  upstream  none of our frames

The last line is "sanitizer-report: K failing": K counts the failing groups
(all of them; with --ours-only the OURS and HOOK ones only: under
ThreadSanitizer upstream's io-threads hand-offs report races of their own).
Exit status 0 when K is 0, else 1.
"""
import argparse
import collections
import os
import re
import subprocess
import sys

OUR_FILES = {"tls_ocsp%s.%s" % (part, ext)
             for part in ("", "_check", "_fetch", "_peer", "_subject", "_worker") for ext in ("c", "h")}
OUR_FILES |= {"tls_crl%s.%s" % (part, ext) for part in ("", "_hooks", "_check") for ext in ("c", "h")}

START = re.compile(r"(?:WARNING|ERROR): (ThreadSanitizer|AddressSanitizer|LeakSanitizer|"
                   r"UndefinedBehaviorSanitizer|MemorySanitizer): ?(.*)")
UBSAN = re.compile(r"(\S+?):(\d+):(?:\d+:)? runtime error: (.*)")
FRAME = re.compile(r"^\s*#(\d+)\s+(?:0x[0-9a-fA-F]+\s+in\s+)?(\S+)\s*(.*)$")
SRCLOC = re.compile(r"(\S+?\.(?:c|h|cc|cpp|inc)):(\d+)")
MODULE = re.compile(r"\(([^()+\s]+)\+0x[0-9a-fA-F]+\)")
LEAK = re.compile(r"^(Direct|Indirect) leak of (\d+) byte")
NOISE = re.compile(r"\s*\(pid=\d+\)|\s+on (unknown )?address.*| at pc 0x.*|\s+\(0x[0-9a-f]+\)")
ACCESS = re.compile(r"^(previous )?(atomic )?(read|write)|acquired|^stack$|^freed|"
                    r"allocated by|^previously allocated|^at |heap block", re.I)
ORDER = {"OURS": 0, "HOOK": 1, "via-ours": 2, "upstream": 3}


class Frame:
    __slots__ = ("func", "file", "line", "module")

    def __init__(self, text):
        m = FRAME.match(text)
        self.func = m.group(2) if m else text.strip()
        rest = m.group(3) if m else ""
        loc = SRCLOC.search(rest)
        self.file, self.line = (loc.group(1), int(loc.group(2))) if loc else (None, None)
        mod = MODULE.search(rest)
        self.module = mod.group(1) if mod else None
        if self.func in ("<null>", "(<unknown"):
            self.func = "?"

    def where(self):
        if self.file:
            return "%s:%d" % (os.path.basename(self.file), self.line)
        return "(%s)" % os.path.basename(self.module) if self.module else "?"

    def short(self):
        return "%s %s" % (self.func, self.where())

    def runtime(self):
        """The sanitizer's own frames (interceptors of memcpy, free, locks)."""
        return bool((self.file and "libsanitizer" in self.file) or
                    (self.module and re.search(r"lib[atlu]san", self.module)))


class Report:
    def __init__(self, tool, kind, path):
        self.tool, self.kind, self.path = tool, kind, path
        self.sections = []  # [title, [Frame]]
        self.text = []

    def section(self, title):
        self.sections.append([title, []])

    def frame(self, line):
        if not self.sections:
            self.section("stack")
        self.sections[-1][1].append(Frame(line))

    def stacks(self):
        return [(t, f) for t, f in self.sections if f]

    def accesses(self):
        """The stacks that touch the memory or the locks (not the creation of
        the threads or mutexes involved)."""
        return [(t, f) for t, f in self.stacks()
                if not t.startswith(("Thread ", "Mutex M")) and (ACCESS.search(t) or len(self.stacks()) == 1)]

    @staticmethod
    def top(frames):
        return ([f for f in frames if not f.runtime()] or frames)[0]

    def signature(self):
        tops = sorted({self.top(f).func for t, f in self.accesses() if "heap block" not in t})
        if not tops:
            tops = [self.text[0][:80] if self.text else "?"]
        return (self.tool, self.kind, tuple(tops))


def parse(path):
    reports = []
    cur = None
    try:
        fd = open(path, "r", errors="replace")
    except OSError:
        return reports
    with fd:
        for raw in fd:
            line = re.sub(r"^==\d+==", "", raw.rstrip("\n"))
            m = START.search(line)
            if m:
                tool, kind = m.group(1), NOISE.sub("", m.group(2)).strip()
                cur = None
                if tool != "LeakSanitizer":  # LSan: each leak below is a report
                    cur = Report(tool, kind, path)
                    reports.append(cur)
                    cur.text.append(line)
                continue
            u = UBSAN.search(line)
            if u:
                cur = Report("UndefinedBehaviorSanitizer", re.sub(r"0x[0-9a-f]+|-?\d+", "N", u.group(3)), path)
                reports.append(cur)
                cur.text.append(line)
                cur.section("at %s:%s" % (os.path.basename(u.group(1)), u.group(2)))
                cur.frame("#0 ? %s:%s" % (u.group(1), u.group(2)))
                cur.section("stack")
                continue
            lk = LEAK.match(line)
            if lk:
                cur = Report("LeakSanitizer", lk.group(1).lower() + " leak", path)
                reports.append(cur)
                cur.text.append(line)
                cur.section("allocated by")
                continue
            if cur is None:
                continue
            if line.startswith(("SUMMARY:", "==================", "Shadow bytes")):
                cur = None
                continue
            if not line.strip():
                if cur.tool == "LeakSanitizer":
                    cur = None
                continue
            cur.text.append(line)
            if FRAME.match(line):
                cur.frame(line)
            elif not line.startswith("    "):
                # TSan: "  Write of size 8 at ... by main thread:", ASan:
                # "READ of size 4 at ... thread T0", "freed by thread T0 here:"
                cur.section(NOISE.sub("", line.strip().rstrip(":")))
    return reports


def patched_files():
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    pdir = os.path.join(top, "patches")
    files = set()
    try:
        series = open(os.path.join(pdir, "series")).read().split("\n")
    except OSError:
        return files
    for name in series:
        name = name.strip()
        if name and not name.startswith("#"):
            try:
                for line in open(os.path.join(pdir, name), errors="replace"):
                    if line.startswith("+++ b/"):
                        files.add(line[6:].split("\t")[0].strip())
            except OSError:
                pass
    return files


def patched_lines(tree, pristine):
    """{path relative to the tree: the line numbers our patches add or change}."""
    out = {}
    if not tree or not pristine:
        return out
    for rel in sorted(patched_files()):
        new, old = os.path.join(tree, rel), os.path.join(pristine, rel)
        if not os.path.isfile(new):
            continue
        diff = subprocess.run(["diff", "-U0", old if os.path.isfile(old) else "/dev/null", new],
                              capture_output=True, text=True, errors="replace").stdout
        lines = set()
        for h in re.finditer(r"^@@ -\S+ \+(\d+)(?:,(\d+))? @@", diff, re.M):
            start, n = int(h.group(1)), int(h.group(2) or 1)
            lines.update(range(start, start + n))
        out[rel] = lines
    return out


def involvement(rep, trees, hooks):
    """('OURS'|'HOOK'|'upstream', the frames of ours in its access stacks)."""
    ours = [f for t, fr in rep.accesses() for f in fr if is_ours(f, trees, hooks)]
    if any(os.path.basename(f.file) in OUR_FILES for f in ours):
        return "OURS", ours
    return ("HOOK", ours) if ours else ("upstream", [])


def is_ours(f, trees, hooks):
    if not f.file:
        return False
    if os.path.basename(f.file) in OUR_FILES:
        return True
    rel = f.file
    for t in trees:
        if rel.startswith(t + "/"):
            rel = rel[len(t) + 1:]
            break
    else:
        if "/src/" in rel:
            rel = "src/" + rel.rsplit("/src/", 1)[1]
    return f.line in hooks.get(rel, ())


def fingerprint(frames):
    """The first two functions of a stack, past the sanitizer's and the
    allocator's own frames."""
    fs = [f.func for f in frames if not f.runtime() and os.path.basename(f.file or "") != "zmalloc.c"]
    return tuple(fs[:2])


def counterparts(rep, trees, hooks):
    """The stacks of a report that has our frames which have none of ours:
    the other side of the race (or, when its stack could not be restored,
    where the memory was allocated)."""
    sides = [(t, f) for t, f in rep.accesses() if not any(is_ours(x, trees, hooks) for x in f)]
    acc = [(t, f) for t, f in sides if "heap block" not in t]
    return acc or sides


def describe(g, nframes, detail):
    rep = g["example"]
    lines = ["[%s]%s %s: %s  (x%d in %d file(s), %d variant(s); e.g. %s)" % (
        g["class"], " FAIL" if g["fails"] else "", rep.tool, rep.kind, g["n"], len(g["files"]),
        len(g["keys"]), os.path.relpath(rep.path))]
    if g["why"]:
        lines.append("    our frames: " + ", ".join(sorted(g["why"])))
    if g["known"]:
        lines.append("    upstream races with it on its own: " + "; ".join(sorted(g["known"])))
    if not detail:
        tops = []
        for title, frames in rep.accesses():
            tops.append(" < ".join(f.short() for f in [f for f in frames if not f.runtime()][:2] or frames[:1]))
        lines.append("    " + "  |  ".join(tops))
        return lines
    stacks = rep.stacks() or []
    for title, frames in stacks:
        lines.append("    " + re.sub(r" at 0x[0-9a-f]+", "", title)[:120])
        for f in frames[:nframes]:
            lines.append("        " + f.short())
    if not stacks:
        lines.extend("    " + t[:150] for t in rep.text[:8])
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", help="the assembled tree the binaries were built from")
    ap.add_argument("--pristine", help="pristine upstream, to find the lines our patches add")
    ap.add_argument("--ours-only", action="store_true", help="fail on OURS and HOOK reports only")
    ap.add_argument("--frames", type=int, default=5, help="frames shown per stack")
    ap.add_argument("--max-upstream", type=int, default=25, help="upstream groups printed")
    ap.add_argument("--out", help="also write every group in full to this file")
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    trees = []
    if a.tree:
        trees = sorted({os.path.abspath(a.tree), os.path.realpath(a.tree)})
    hooks = patched_lines(a.tree, a.pristine)

    reports = [r for path in a.files for r in parse(path)]
    for r in reports:
        r.cls, r.why = involvement(r, trees, hooks)
    clean = {r.signature() for r in reports if r.cls == "upstream"}
    clean_sides = {fingerprint(f) for r in reports if r.cls == "upstream" for t, f in r.accesses()}
    clean_sides.discard(())
    groups = collections.OrderedDict()
    for r in reports:
        sig = r.signature()
        cls = r.cls
        known = ()
        if cls != "upstream":
            # An upstream race our code merely reaches: the same race without
            # our frames, or a counterpart upstream races with on its own
            # (its io-threads hand-offs, its memory counters).
            if sig in clean and all(r.top(f) not in r.why for t, f in r.accesses()):
                known = ("the same race is reported without our frames",)
            else:
                known = tuple(" < ".join(fingerprint(f)) for t, f in counterparts(r, trees, hooks)
                              if fingerprint(f) in clean_sides)
            if known:
                cls = "via-ours"
        g = groups.setdefault((cls, sig), {"class": cls, "example": r, "n": 0, "files": set(),
                                           "keys": set(), "why": set(), "known": set()})
        g["n"] += 1
        g["files"].add(r.path)
        g["keys"].add(tuple(sorted(",".join(f.short() for f in fr[:3]) for t, fr in r.accesses())))
        g["why"].update(f.short() for f in r.why)
        g["known"].update(known)
    for g in groups.values():
        g["fails"] = g["class"] in ("OURS", "HOOK") if a.ours_only else True
    rows = sorted(groups.values(), key=lambda g: (ORDER[g["class"]], -g["n"]))
    count = collections.Counter(g["class"] for g in rows)
    failing = sum(g["fails"] for g in rows)

    head = ("sanitizer-report: %d report(s) in %d file(s), %d group(s): %d OURS (tls_ocsp*, tls_crl*), %d HOOK "
            "(lines our patches add), %d via-ours (upstream races our code reaches), %d upstream only"
            % (len(reports), len({r.path for r in reports}), len(rows), count["OURS"], count["HOOK"],
               count["via-ours"], count["upstream"]))
    print(head)
    shown_up = 0
    for g in rows:
        if g["class"] == "upstream":
            if shown_up >= a.max_upstream:
                continue
            shown_up += 1
        print("")
        print("\n".join(describe(g, a.frames, g["class"] != "upstream")))
    if count["upstream"] > shown_up:
        print("\n... and %d more upstream-only group(s)%s" % (
            count["upstream"] - shown_up, " (all of them in %s)" % a.out if a.out else ""))
    if a.out:
        with open(a.out, "w") as out:
            out.write(head + "\n")
            for g in rows:
                out.write("\n" + "\n".join(describe(g, 12, True)) + "\n")
    print("")
    print("sanitizer-report: %d failing" % failing)
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
