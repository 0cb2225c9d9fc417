#!/usr/bin/env python3
"""The reference side of scripts/bench-core.

Times the original matcher and decision loop (PyPI package `hardware`,
0.33.0) on the inputs the Rust bench wrote (`EDEPLOY_BENCH_DUMP`), runs the
differential check, and prints the comparison table. Subcommands:

  reference INPUTS OUT.jsonl      time the reference, one JSON line per case
  jbod-worker CASE.json           (internal) time one JBOD case
  diff-cases OUT.jsonl COUNT SEED write random cases for both matchers
  diff-report CASES ANSWERS OUT   compare the answers, print a summary
  table OURS REF DIFF MACHINE     print the Markdown table
"""

import ast
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import timeit

MIN_BATCH = 0.5  # seconds
BATCHES = 5
# An operation slower than this gets fewer batches (jbod-5 takes seconds).
SLOW_OP = 2.0
SLOW_BATCHES = 3
# Subprocess timeouts of the JBOD cases, in seconds.
JBOD_TIMEOUT_SMALL = 180  # N <= 5: finishes, slowly
JBOD_TIMEOUT_6 = 60
JBOD_TIMEOUT_LARGE = 10


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def emit(out, record):
    line = json.dumps(record)
    out.write(line + "\n")
    out.flush()
    log(line)


# ---------------------------------------------------------------------------
# Timing, the same way as benches/core.rs


def measure(run, first=None):
    """run(iters) -> seconds measured for iters operations.

    `first` is an already measured single operation (seconds), if any.
    Returns (median seconds per op, iters per batch, batches, min, max).
    """
    iters = 1
    took = first if first is not None else run(1)
    while took < MIN_BATCH:
        if took <= 0:
            scaled = iters * 10
        else:
            scaled = int(iters * MIN_BATCH * 1.2 / took) + 1
        iters = max(iters + 1, min(scaled, iters * 10))
        took = run(iters)
    per_op = []
    if took / iters >= SLOW_OP:
        # The calibration run is a valid batch of one: keep it.
        batches = SLOW_BATCHES
        per_op.append(took / iters)
    else:
        batches = BATCHES
    while len(per_op) < batches:
        per_op.append(run(iters) / iters)
    per_op.sort()
    return statistics.median(per_op), iters, batches, per_op[0], per_op[-1]


def record(case, result, **extra):
    med, iters, batches, lo, hi = result
    rec = {
        "case": case,
        "ns_per_op": med * 1e9,
        "iters": iters,
        "batches": batches,
        "min_ns": lo * 1e9,
        "max_ns": hi * 1e9,
    }
    rec.update(extra)
    return rec


def timeit_run(func):
    timer = timeit.Timer(func)
    return lambda iters: timer.timeit(number=iters)


def literal_file(path):
    with open(path) as f:
        return ast.literal_eval(f.read())


def tuples(lines):
    return [tuple(line) for line in lines]


# ---------------------------------------------------------------------------
# The reference cases


def bench_kvm(inputs, out):
    from hardware import matcher

    paths = json.load(open(os.path.join(inputs, "kvm.json")))
    specs = literal_file(paths["kvm_specs"])
    hw = literal_file(paths["kvm_hw"])
    var, var2 = {}, {}
    assert matcher.match_all(hw, specs, var, var2), "kvm-test must match"
    assert var["eth"] == "eth0" and var["eth-io"] == "eth1", var

    def find():
        matcher.match_all(hw, specs, {}, {})

    emit(out, record("kvm", measure(timeit_run(find))))
    # The reference has no compile step: its specs are used as read.
    emit(
        out,
        record(
            "kvm-compile+find",
            measure(timeit_run(find)),
            note="no compile step in the reference: same as kvm",
        ),
    )


def jbod_worker(path):
    """Runs in a subprocess: prints one JSON object."""
    from hardware import matcher

    case = json.load(open(path))
    specs = tuples(case["specs"])
    hw = tuples(case["hw"])

    def once():
        var = {}
        ok = matcher.match_all(hw, specs, var, {})
        return ok, var

    start = timeit.default_timer()
    ok, var = once()
    first = timeit.default_timer() - start
    if not ok:
        print(json.dumps({"nomatch": True, "seconds": first}), flush=True)
        return
    if var.get("d0") != case["answer_d0"]:
        print(json.dumps({"wrong": var.get("d0"), "seconds": first}), flush=True)
        return
    print(json.dumps({"result": list(measure(timeit_run(once), first))}), flush=True)


def bench_jbod(inputs, out):
    names = sorted(
        (f for f in os.listdir(inputs) if f.startswith("jbod-")),
        key=lambda f: int(f[5:-5]),
    )
    for name in names:
        n = int(name[5:-5])
        case = "jbod-%d" % n
        if n <= 5:
            limit = JBOD_TIMEOUT_SMALL
        elif n == 6:
            limit = JBOD_TIMEOUT_6
        else:
            limit = JBOD_TIMEOUT_LARGE
        cmd = [sys.executable, os.path.abspath(__file__), "jbod-worker",
               os.path.join(inputs, name)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True,
                                  timeout=limit, check=True)
        except subprocess.TimeoutExpired:
            emit(out, {"case": case, "timeout_s": limit,
                       "text": "did not finish in %d s" % limit})
            continue
        except subprocess.CalledProcessError as e:
            emit(out, {"case": case, "error": e.stderr.strip()[-500:]})
            continue
        answer = json.loads(done.stdout.strip().splitlines()[-1])
        if "result" in answer:
            emit(out, record(case, answer["result"]))
        elif "nomatch" in answer:
            emit(out, {"case": case, "nomatch_after_s": answer["seconds"],
                       "text": "returned False (wrong \"no match\", depth cap)"
                               " after %.3g s" % answer["seconds"]})
        else:
            emit(out, {"case": case, "error": "wrong answer d0=%r" % answer})


def node_mac(node):
    return "52:54:%02x:%02x:%02x:%02x" % (
        (node >> 24) & 0xff, (node >> 16) & 0xff, (node >> 8) & 0xff,
        node & 0xff)


class Decisions:
    """The reference's decision: state.State.load (its O_EXCL lock file),
    find_match (every profile's specs read and matched, then the CMDB
    entry handed out and the CMDB saved), the configure script read, then
    state.save() and unlock(), as the original upload CGI did."""

    def __init__(self, inputs, root):
        self.template = os.path.join(inputs, "decision-config")
        case = json.load(open(os.path.join(inputs, "decision.json")))
        self.hw = tuples(case["hw"])
        self.mac_line = case["mac_line"]
        self.profile = case["matching_profile"]
        self.refill_at = case["refill_at"]
        self.root = tempfile.mkdtemp(prefix="edeploy-bench-ref-", dir=root)
        self.cfg = os.path.join(self.root, "config")
        self.node = 0
        self.used = 0
        self.reset()

    def reset(self):
        if os.path.exists(self.cfg):
            shutil.rmtree(self.cfg)
        shutil.copytree(self.template, self.cfg)
        self.used = 0

    def one(self, write):
        from hardware import state

        if write and self.used >= self.refill_at:
            self.reset()
        self.node += 1
        line = self.hw[self.mac_line]
        mac = node_mac(self.node)
        self.hw[self.mac_line] = line[:3] + (mac,)
        start = timeit.default_timer()
        st = state.State()
        st.load(self.cfg)
        try:
            name, var = st.find_match(self.hw)
            with open(os.path.join(self.cfg, name + ".configure")) as f:
                f.read()
            if write:
                st.save()
        finally:
            st.unlock()
        took = timeit.default_timer() - start
        if write:
            self.used += 1
        assert name == self.profile, name
        assert var["mac"] == mac and "hostname" in var, var
        return took

    def close(self):
        shutil.rmtree(self.root, ignore_errors=True)


def bench_decision(inputs, root, out):
    from hardware import cmdb

    bench = Decisions(inputs, root)
    try:
        bench.one(True)
        saved = open(os.path.join(bench.cfg, bench.profile + ".cmdb")).read()
        assert node_mac(bench.node) in saved, "the reference saved its CMDB"

        def run_write(iters):
            bench.reset()
            return sum(bench.one(True) for _ in range(iters))

        emit(out, record(
            "decision", measure(run_write),
            note="the reference writes state and CMDB with plain open()/"
                 "write(): no fsync, no rename, no journal; its lock is an "
                 "O_EXCL lock file"))

        real_save = cmdb.save_cmdb
        cmdb.save_cmdb = lambda *args: None
        try:
            def run_nowrite(iters):
                return sum(bench.one(False) for _ in range(iters))

            emit(out, record(
                "decision-nowrite", measure(run_nowrite),
                note="reference with cmdb.save_cmdb and state.save skipped;"
                     " it still creates and removes its lock file"))
        finally:
            cmdb.save_cmdb = real_save
    finally:
        bench.close()


def reference(inputs, out_path):
    import hardware

    root = os.environ.get("EDEPLOY_BENCH_DIR") or tempfile.gettempdir()
    os.makedirs(root, exist_ok=True)
    version = "unknown"
    try:
        from importlib import metadata
        version = metadata.version("hardware")
    except Exception:  # noqa: BLE001 - informative only
        pass
    log("reference: hardware %s from %s" % (version, hardware.__file__))
    with open(out_path, "w") as out:
        bench_kvm(inputs, out)
        bench_jbod(inputs, out)
        bench_decision(inputs, root, out)


# ---------------------------------------------------------------------------
# Differential check

SPEC_LITERALS = ["a", "b", "1", "2"]
SPEC_VARS = ["$a", "$b", "$c"]
HW_VALUES = ["a", "b", "1", "2", "3"]
DERIVED_VALUES = ["a", "1", "2"]


def free_position(rng):
    """Like spec_position() in tests/matcher.rs."""
    kind = rng.choices(["lit", "var", "gt", "le"], weights=[3, 3, 1, 1])[0]
    if kind == "lit":
        return rng.choice(SPEC_LITERALS)
    if kind == "var":
        return rng.choice(SPEC_VARS)
    if kind == "gt":
        return "gt(%d)" % rng.randrange(4)
    return "$a=le(%d)" % rng.randrange(4)


def free_case(rng):
    specs = [[free_position(rng) for _ in range(4)]
             for _ in range(rng.randint(1, 5))]
    hw = [[rng.choice(HW_VALUES) for _ in range(4)]
          for _ in range(rng.randint(1, 8))]
    return specs, hw


def numeric_case(rng):
    """Only digits in the hardware lines, so the reference's float() never
    raises and its search itself is compared."""
    def position():
        kind = rng.choices(["lit", "var", "gt", "le"], weights=[3, 3, 2, 1])[0]
        if kind == "lit":
            return rng.choice(["1", "2"])
        if kind == "var":
            return rng.choice(SPEC_VARS)
        if kind == "gt":
            return "gt(%d)" % rng.randrange(3)
        return "$a=le(%d)" % rng.randrange(1, 4)

    specs = [[position() for _ in range(4)] for _ in range(rng.randint(1, 5))]
    hw = [[rng.choice(["1", "2", "3"]) for _ in range(4)]
          for _ in range(rng.randint(1, 8))]
    return specs, hw


# Weights of copy / literal / variable / gt(n) / $a=le(n), per position,
# as in derived_case() of tests/matcher.rs.
DERIVE_WEIGHTS = [[20, 1, 0, 0, 0], [1, 0, 5, 0, 0], [20, 0, 1, 0, 0],
                  [3, 1, 5, 1, 1]]


def derived_case(rng):
    """Spec lines derived from hardware lines, so most get past line 1."""
    hw = [[rng.choice(DERIVED_VALUES) for _ in range(4)]
          for _ in range(rng.randint(1, 8))]
    specs = []
    for _ in range(rng.randint(1, 5)):
        source = rng.choice(hw)
        line = []
        for p in range(4):
            how = rng.choices(range(5), weights=DERIVE_WEIGHTS[p])[0]
            numeric = source[p].isdigit()
            if how == 1:
                line.append(rng.choice(["a", "1", "2"]))
            elif how == 2:
                line.append(rng.choice(SPEC_VARS))
            elif how == 3 and numeric:
                line.append("gt(%d)" % rng.randrange(4))
            elif how == 4 and numeric:
                line.append("$a=le(%d)" % rng.randrange(4))
            else:
                line.append(source[p])
        specs.append(line)
    return specs, hw


def linked_case(rng):
    """Like linked_case() in tests/matcher.rs: one class, few names, the
    same variables on several lines, near-duplicate hardware lines, numeric
    tests and $$ variables, so that most cases backtrack."""
    def value():
        kind = rng.choices(["plain", "gt", "le"], weights=[3, 1, 1])[0]
        if kind == "gt":
            return "gt(%d)" % rng.randrange(3)
        if kind == "le":
            return "$w=le(%d)" % rng.randrange(1, 4)
        return rng.choice(["1", "2", "$v", "$w", "$$v"])

    specs = [["d", rng.choice(["$a", "$b", "$c", "$$a", "x", "y"]),
              rng.choice(["s", "m", "$k"]), value()]
             for _ in range(rng.randint(1, 6))]
    hw = [["d", rng.choice("xyzw"), rng.choice("sm"), rng.choice("123")]
          for _ in range(rng.randint(1, 9))]
    return specs, hw


def diff_cases(out_path, count, seed):
    rng = random.Random(seed)
    with open(out_path, "w") as out:
        for i in range(count):
            make = (free_case, derived_case, numeric_case, linked_case)[i % 4]
            specs, hw = make(rng)
            out.write(json.dumps({"specs": specs, "hw": hw}) + "\n")


def position_ok(spec, value):
    """Whether one position fits, ignoring bindings, for the tiny alphabet
    of the cases: False, True, or the name of its variable."""
    def number(text):
        try:
            return int(text)
        except ValueError:
            return None

    if spec.startswith("$"):
        name, _, func = spec.partition("=")
        if func:
            n, limit = number(value), int(func[3:-1])
            if n is None or not n <= limit:
                return False
        return name[1:]
    if spec.startswith("gt("):
        n = number(value)
        return n is not None and n > int(spec[3:-1])
    return spec == value


def line_ok(spec, line, env):
    """Our documented semantics: a variable bound before the line must be
    equal at each of its positions; the others are bound once the line
    fits, position by position, the last one winning."""
    binds = []
    for p in range(4):
        fit = position_ok(spec[p], line[p])
        if fit is False:
            return False
        if fit is True:
            continue
        if fit in env:
            if env[fit] != line[p]:
                return False
        else:
            binds.append((fit, line[p]))
    for key, value in binds:
        env[key] = value
    return True


def first_solution(specs, hw):
    """Independent search: the first injective pairing in lexicographic
    order of hardware line indexes, or None."""
    used = [False] * len(hw)

    def walk(i, env):
        if i == len(specs):
            return env
        for j, line in enumerate(hw):
            if used[j]:
                continue
            new = dict(env)
            if line_ok(specs[i], line, new):
                used[j] = True
                found = walk(i + 1, new)
                used[j] = False
                if found is not None:
                    return found
        return None

    return walk(0, {})


REASONS = {
    "order": "search order: ours replays the reference's; a difference "
             "here is a bug",
    "other": "not explained by the known differences",
}


def category(specs, ours):
    if ours is not None:
        return "order"
    return "other"


def diff_report(cases_path, answers_path, out_path):
    from hardware import matcher

    cases = [json.loads(t) for t in open(cases_path) if t.strip()]
    answers = [json.loads(t) for t in open(answers_path) if t.strip()]
    assert len(cases) == len(answers), (len(cases), len(answers))
    summary = {"cases": len(cases), "reference_raised": 0,
               "reference_matched": 0, "identical_vars": 0,
               "reference_nomatch": 0, "ours_matched_where_reference_not": 0,
               "ours_nomatch_where_reference_matched": 0,
               "ours_errors": 0, "ours_equal_first_solution": 0,
               "ours_marked_beyond": 0,
               "disagreement_kinds": {}, "disagreements": [],
               "missed_examples": [],
               "raised_examples": []}
    found = []
    for case, ours in zip(cases, answers):
        specs, hw = tuples(case["specs"]), tuples(case["hw"])
        if "error" in ours:
            summary["ours_errors"] += 1
            continue
        our_vars = ours.get("vars")
        var = {}
        try:
            ok = matcher.match_all(hw, specs, var, {})
        except Exception as e:  # noqa: BLE001 - the reference crashes
            summary["reference_raised"] += 1
            if len(summary["raised_examples"]) < 1:
                summary["raised_examples"].append(
                    {"specs": case["specs"], "hw": case["hw"],
                     "exception": "%s: %s" % (type(e).__name__, e)})
            continue
        if not ok:
            summary["reference_nomatch"] += 1
            if our_vars is not None:
                summary["ours_matched_where_reference_not"] += 1
                if ours.get("beyond_reference"):
                    summary["ours_marked_beyond"] += 1
                plain = not any(p.startswith("$$") for line in case["specs"]
                                for p in line)
                if plain and first_solution(case["specs"],
                                            case["hw"]) == our_vars:
                    summary["ours_equal_first_solution"] += 1
                if len(summary["missed_examples"]) < 2:
                    summary["missed_examples"].append(
                        {"specs": case["specs"], "hw": case["hw"],
                         "ours": our_vars})
            continue
        summary["reference_matched"] += 1
        if our_vars == var:
            summary["identical_vars"] += 1
            continue
        if our_vars is None:
            summary["ours_nomatch_where_reference_matched"] += 1
        kind = category(case["specs"], our_vars)
        kinds = summary["disagreement_kinds"]
        kinds[kind] = kinds.get(kind, 0) + 1
        found.append({"specs": case["specs"], "hw": case["hw"],
                      "reference": var, "ours": our_vars, "kind": kind,
                      "why": REASONS[kind]})
    # Up to 3 examples: the first of each kind, then the next ones.
    firsts = [d for i, d in enumerate(found)
              if d["kind"] not in [e["kind"] for e in found[:i]]]
    firsts.sort(key=lambda d: ["order", "other"].index(d["kind"]))
    rest = [d for d in found if d not in firsts]
    summary["disagreements"] = (firsts + rest)[:3]
    with open(out_path, "w") as out:
        json.dump(summary, out, indent=1)
    print(diff_text(summary))


KIND_NAMES = {
    "order": "from the search order",
    "other": "unexplained",
}


def diff_text(s):
    lines = [
        "Differential check: %d random cases with tiny alphabets, as in "
        "tests/matcher.rs (a quarter free, a quarter derived from the "
        "hardware lines, a quarter with digits only in the hardware lines, "
        "a quarter of linked lines that backtrack)."
        % s["cases"],
        "- the reference raised an exception on %d (float() of a "
        "non-numeric value under gt()/le(): the original crashes, we treat "
        "the line as not fitting)" % s["reference_raised"],
        "- the reference found a match in %d; identical vars in %d, "
        "different in %d (of which we found no match: %d)" % (
            s["reference_matched"], s["identical_vars"],
            s["reference_matched"] - s["identical_vars"],
            s["ours_nomatch_where_reference_matched"]),
        "- the differences: %s" % (", ".join(
            "%d %s" % (n, KIND_NAMES[k])
            for k, n in sorted(s["disagreement_kinds"].items())) or "none"),
        "- the reference said no match in %d; we found a match in %d of "
        "those (its missing backtracking and depth limit), %d of them "
        "marked beyond_reference; where no $$ variable is involved, that "
        "match is the first solution in file order of an independent "
        "exhaustive search in %d" % (
            s["reference_nomatch"], s["ours_matched_where_reference_not"],
            s.get("ours_marked_beyond", 0),
            s["ours_equal_first_solution"]),
    ]
    if s["ours_errors"]:
        lines.append("- our side reported an error on %d" % s["ours_errors"])
    def show(lines_):
        return ", ".join("(%s)" % ", ".join(repr(x) for x in line)
                         for line in lines_)

    for i, d in enumerate(s["disagreements"], 1):
        lines.append("")
        lines.append("Disagreement %d:" % i)
        lines.append("  specs: %s" % show(d["specs"]))
        lines.append("  hw:    %s" % show(d["hw"]))
        lines.append("  reference vars: %s" % json.dumps(d["reference"]))
        lines.append("  our vars:       %s" % (
            json.dumps(d["ours"]) if d["ours"] is not None else "no match"))
        lines.append("  why: %s" % d["why"])
    for d in s["missed_examples"]:
        lines.append("")
        lines.append("The reference said no match, we matched:")
        lines.append("  specs: %s" % show(d["specs"]))
        lines.append("  hw:    %s" % show(d["hw"]))
        lines.append("  our vars: %s" % json.dumps(d["ours"]))
        lines.append("  why: the reference retries only spec lines that "
                     "bound a new variable; a line binding nothing new keeps "
                     "the first hardware line it took even when a later "
                     "spec line needs that line, and the retries of the "
                     "other lines find the same candidates again until its "
                     "50-level cap")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# The table

ROWS = ["kvm", "kvm-compile+find", "jbod-4", "jbod-5", "jbod-6", "jbod-8",
        "jbod-24", "jbod-60", "linked-8+8-13", "linked-8+8-24",
        "linked-8+8-60", "wide-80k+80k", "large-16MiB", "decision",
        "decision-nowrite"]
GOALS = {
    "linked-8+8-13": ("≤ 10 ms", 10e6),
    "linked-8+8-24": ("≤ 10 ms", 10e6),
    "linked-8+8-60": ("≤ 10 ms", 10e6),
    "wide-80k+80k": ("≤ 200 ms", 200e6),
    "large-16MiB": ("≤ 1 s, reading included", 1e9),
    "kvm": ("≤ 20 µs (reference ~130 µs)", 20e3),
    "jbod-60": ("≤ 10 ms (reference: 0.57 s at N=4, 10.5 s at N=5, "
                "never at N=6)", 10e6),
    "decision": ("≤ 1 ms per decision, atomic writes included", 1e6),
}


def human(ns):
    if ns < 1e3:
        return "%.0f ns" % ns
    if ns < 1e6:
        return "%.3g µs" % (ns / 1e3)
    if ns < 1e9:
        return "%.3g ms" % (ns / 1e6)
    return "%.3g s" % (ns / 1e9)


def ratio_text(r):
    if r >= 100:
        return "%s" % format(round(r), ",")
    return "%.3g" % r


def load_jsonl(path):
    return {r["case"]: r for r in (json.loads(t) for t in open(path)
                                   if t.strip())}


def table(ours_path, ref_path, diff_path, machine_path):
    ours = load_jsonl(ours_path)
    ref = load_jsonl(ref_path)
    print(open(machine_path).read().rstrip())
    print()
    print("| case | reference | ours | ratio (reference/ours) | goal |")
    print("|---|---|---|---|---|")
    missed = []
    for case in ROWS:
        o, r = ours.get(case), ref.get(case)
        if o is None:
            continue
        ours_ns = o["ns_per_op"]
        if r is None:
            ref_text, ratio = "not run", "—"
        elif "ns_per_op" in r:
            ref_text = human(r["ns_per_op"])
            ratio = ratio_text(r["ns_per_op"] / ours_ns)
        elif "timeout_s" in r:
            ref_text = "did not finish in %d s" % r["timeout_s"]
            ratio = "> " + ratio_text(r["timeout_s"] * 1e9 / ours_ns)
        elif "nomatch_after_s" in r:
            ref_text = ("wrong \"no match\" (returned False after %.3g s)"
                        % r["nomatch_after_s"])
            ratio = "—"
        else:
            ref_text, ratio = "error: %s" % r.get("error"), "—"
        goal = "—"
        if case in GOALS:
            text, limit = GOALS[case]
            met = ours_ns <= limit
            goal = "%s: %s" % (text, "met" if met else "**missed**")
            if not met:
                missed.append(case)
        print("| %s | %s | %s | %s | %s |" % (case, ref_text, human(ours_ns),
                                             ratio, goal))
    print()
    print("Times are medians of %d batches of at least %.1f s each "
          "(fewer batches for reference operations over %g s)."
          % (BATCHES, MIN_BATCH, SLOW_OP))
    notes = [(c, r["note"]) for c, r in ref.items() if r.get("note")]
    for case, note in notes:
        print("- reference %s: %s" % (case, note))
    if missed:
        print()
        print("Goals missed: %s." % ", ".join(missed))
        if "decision" in missed and "decision-nowrite" in ours:
            print("decision without writes (commit = false): %s."
                  % human(ours["decision-nowrite"]["ns_per_op"]))
    print()
    print(diff_text(json.load(open(diff_path))))


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "reference":
        reference(*args)
    elif cmd == "jbod-worker":
        jbod_worker(*args)
    elif cmd == "diff-cases":
        diff_cases(args[0], int(args[1]), int(args[2]))
    elif cmd == "diff-report":
        diff_report(*args)
    elif cmd == "table":
        table(*args)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
