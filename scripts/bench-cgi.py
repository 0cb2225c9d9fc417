#!/usr/bin/env python3
"""The measuring side of scripts/bench-cgi: upload.cgi against a CGI written
with the original's PyPI package `hardware` (0.33.0).

Subcommands (run by scripts/bench-cgi):

  write-cgi PATH                         write the Python CGI to PATH
  site DIR COUNT ENTRIES                 a site: DIR/config from
                                         share/examples/config with state
                                         [('vm', COUNT)] and a generate()
                                         CMDB of ENTRIES entries, DIR/hw,
                                         DIR/logs, DIR/edeploy.conf
  p1 OURS PYTHON OURS_SITE PY_SITE RUNS OUT.json [TMPFS_SITE]
                                         RUNS sequential CGI executions of
                                         each (interleaved), as a web server
                                         does them, and of /bin/true (and of
                                         ours on TMPFS_SITE)
  p2 LABEL PORT PATH SITE NODES TIMEOUT OUT.json
                                         NODES concurrent uploads through the
                                         web server on 127.0.0.1:PORT, then
                                         the CMDB and state checks
  table P1.json MACHINE P2.json...       the Markdown table
"""

import ast
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KVM = os.path.join(ROOT, "tests", "fixtures", "hw", "kvm-test-vm-bios.hw")
EXAMPLE = os.path.join(ROOT, "share", "examples", "config")
BOUNDARY = "------------------------edeploybench0001"
# Wall-clock bound of one P1 side (seconds): the loop stops early, and says
# so, rather than run for ever on a very slow machine.
P1_SIDE_BUDGET = 600
WARMUP = 5
REFERENCE = "0.33.0"

# ---------------------------------------------------------------------------
# The Python CGI.

PY_CGI = r'''#!/usr/bin/env python3
"""upload.cgi written with the PyPI package `hardware` (0.33.0), as the
reference of scripts/bench-cgi.

Answers one multipart/form-data upload of a hardware list: keeps it as
HWDIR/<sysname>.hw, lets hardware.state.State.find_match pick the profile
and take a CMDB entry (a generate() CMDB is expanded first with
hardware.generate.generate, the text kept as .cmdb.orig), writes the state
and the CMDB back, prints the answer as JSON and one log line on stderr.
Files are written as the package writes them: in place, without fsync.

The lock: with EDEPLOY_BENCH_LOCK=package, the package's own
(State.load/unlock: an O_CREAT|O_EXCL lock file, polled once a second);
otherwise an flock(2) on the same file, as upload.cgi does.
"""

import ast
import configparser
import fcntl
import json
import os
import pprint
import re
import shutil
import sys

from hardware import cmdb, generate, state


def log(status, text):
    sys.stderr.write("upload.py[%d] %s: %d %s\n" % (
        os.getpid(), os.environ.get("REMOTE_ADDR", "-"), status, text))


def answer(status, body):
    out = sys.stdout
    if status != 200:
        out.write("Status: %d\r\n" % status)
    out.write("Content-Type: application/json\r\n\r\n")
    out.write(json.dumps(body) + "\n")
    out.flush()


class Refused(Exception):
    def __init__(self, status, sentence):
        Exception.__init__(self, sentence)
        self.status = status
        self.sentence = sentence


def read_form():
    ctype = os.environ.get("CONTENT_TYPE", "")
    found = re.search(r'boundary="?([^";]+)"?', ctype)
    if not ctype.lower().startswith("multipart/form-data") or not found:
        raise Refused(400, "expected a multipart/form-data upload")
    length = os.environ.get("CONTENT_LENGTH", "").strip()
    stdin = sys.stdin.buffer
    body = stdin.read(int(length)) if length else stdin.read()
    delim = b"--" + found.group(1).encode()
    fields = {}
    chunks = body.split(delim)
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, data = chunk[2:].partition(b"\r\n\r\n")
        name = re.search(rb'\bname="([^"]*)"', head)
        if not sep or not name or not data.endswith(b"\r\n"):
            raise Refused(400, "the multipart body is malformed")
        filename = re.search(rb'\bfilename="([^"]*)"', head)
        fields[name.group(1).decode()] = (
            filename.group(1).decode() if filename else None, data[:-2])
    else:
        raise Refused(400, "the multipart body has no closing boundary")
    return fields


class FlockState(state.State):
    """hardware's State, locked with flock(2) instead of a polled lock file."""

    def lock(self):
        self._validate_lockname()
        self._lock_fd = os.open(self._lockname, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        return self._lock_fd

    def unlock(self):
        if self._lock_fd:
            os.close(self._lock_fd)
            self._lock_fd = None


def word(text):
    return re.sub(r"\W", "", text)


def sysname(items):
    product = {}
    mac = None
    for item in items:
        if len(item) != 4:
            continue
        if item[0] == "system" and item[1] == "product":
            product.setdefault(item[2], item[3])
        elif item[0] == "network" and item[2] == "serial" and mac is None:
            mac = item[3]
    serial = word(product.get("serial", "")) or (mac or "").replace(":", "-")
    parts = [word(product.get("name", "")), word(product.get("vendor", "")),
             serial]
    return "-".join(p for p in parts if p) or "unknown"


def expand_cmdb(cfgdir, name):
    path = cmdb.cmdb_filename(cfgdir, name)
    try:
        with open(path) as f:
            text = f.read()
    except IOError:
        return
    if "generate(" not in text:
        return
    call = ast.parse(text, mode="eval").body
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
            and call.func.id == "generate" and len(call.args) == 1):
        raise Refused(500, "%s: only a single generate() call is handled" % path)
    model = ast.literal_eval(call.args[0])
    shutil.copy2(path, path + ".orig")
    cmdb.save_cmdb(cfgdir, name, generate.generate(model))


def serve():
    method = os.environ.get("REQUEST_METHOD", "")
    if method != "POST":
        raise Refused(405, "only POST uploads are accepted, not %r" % method)
    conf = configparser.ConfigParser()
    conf.read(os.environ.get("EDEPLOY_CONF", "/etc/edeploy.conf"))
    try:
        cfgdir = conf.get("SERVER", "CONFIGDIR")
    except configparser.Error as e:
        raise Refused(500, "bad configuration: %s" % e)
    hwdir = conf.get("SERVER", "HWDIR", fallback=cfgdir)
    lockfile = conf.get("SERVER", "LOCKFILE", fallback="/var/lock/edeploy.lock")
    fields = read_form()
    if "file" not in fields:
        raise Refused(400, 'the upload has no "file" field')
    try:
        items = [tuple(x) for x in ast.literal_eval(fields["file"][1].decode())]
    except (ValueError, SyntaxError, TypeError, UnicodeDecodeError) as e:
        raise Refused(400, "bad hardware list: %s" % e)
    node = sysname(items)
    if os.environ.get("EDEPLOY_BENCH_LOCK") == "package":
        st = state.State(lockname=lockfile)
    else:
        st = FlockState(lockname=lockfile)
    try:
        st.load(cfgdir)
    except state.StateError as e:
        raise Refused(500, str(e))
    try:
        with open(os.path.join(hwdir, node + ".hw"), "w") as f:
            pprint.pprint(items, stream=f)
        for name, _ in st._data:
            expand_cmdb(cfgdir, name)
        try:
            profile, var = st.find_match(items)
        except state.StateError as e:
            raise Refused(404, "%s: %s" % (node, e))
        except cmdb.CmdbError as e:
            raise Refused(409, "%s: %s" % (node, e))
        st.save()
    finally:
        st.unlock()
    var["edeploy-profile"] = profile
    with open(os.path.join(cfgdir, profile + ".configure")) as f:
        script = f.read()
    log(200, "%s: profile %s" % (node, profile))
    return {"profile": profile, "vars": var, "script": script, "settings": {}}


def main():
    try:
        body = serve()
    except Refused as e:
        log(e.status, e.sentence)
        answer(e.status, {"error": e.sentence})
        return
    answer(200, body)


main()
'''


def write_cgi(path):
    with open(path, "w") as f:
        f.write(PY_CGI)
    os.chmod(path, 0o755)


# ---------------------------------------------------------------------------
# Sites and requests


def write_site(d, count, cmdb, conf_lines=()):
    """DIR/config: the shipped example, with state [('vm', COUNT)] and
    CMDB as vm.cmdb; DIR/edeploy.conf pointing at it, then CONF_LINES.
    Returns DIR/config."""
    config = os.path.join(d, "config")
    for sub in ("config", "hw", "logs"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    for name in os.listdir(EXAMPLE):
        shutil.copy(os.path.join(EXAMPLE, name), config)
    with open(os.path.join(config, "state"), "w") as f:
        f.write("[('vm', %d)]\n" % count)
    with open(os.path.join(config, "vm.cmdb"), "w") as f:
        f.write(cmdb)
    with open(os.path.join(d, "edeploy.conf"), "w") as f:
        f.write(
            "[SERVER]\nCONFIGDIR = %s\nHWDIR = %s\nLOGDIR = %s\nLOCKFILE = %s\n"
            % (config, os.path.join(d, "hw"), os.path.join(d, "logs"),
               os.path.join(d, "edeploy.lock"))
        )
        for line in conf_lines:
            f.write(line + "\n")
    return config


def make_site(d, count, entries):
    """DIR/config: the shipped example, with state [('vm', COUNT)] and a
    CMDB of ENTRIES entries (hostnames node1.., IPs 10.1.x.1-200)."""
    if entries % 200 or not 0 < entries <= 200 * 250:
        raise SystemExit("site: ENTRIES must be a multiple of 200")
    write_site(
        d, count,
        "generate({'hostname': 'node1-%d',\n"
        "          'ip': '10.1.0-%d.1-200',\n"
        "          'netmask': '255.255.0.0',\n"
        "          'gateway': '10.1.255.254'})\n" % (entries, entries // 200 - 1),
    )


def node_hw(series, i):
    """The KVM fixture with every MAC made unique to (series, i)."""
    with open(KVM) as f:
        text = f.read()
    return text.replace(
        "52:54:12:34:00:", "52:%02x:%02x:%02x:00:" % (series, (i >> 8) & 255, i & 255)
    ).encode()


def multipart(data):
    return (
        ("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"hw.py\"\r\n"
         "Content-Type: application/octet-stream\r\n\r\n" % BOUNDARY).encode()
        + data
        + ("\r\n--%s--\r\n" % BOUNDARY).encode()
    )


CONTENT_TYPE = "multipart/form-data; boundary=" + BOUNDARY


def cgi_env(site, length):
    # What lighttpd gives a CGI (no PATH), plus the configuration.
    return {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_SOFTWARE": "bench-cgi",
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "/cgi-bin/upload.cgi",
        "CONTENT_TYPE": CONTENT_TYPE,
        "CONTENT_LENGTH": str(length),
        "REMOTE_ADDR": "127.0.0.1",
        "EDEPLOY_CONF": os.path.join(site, "edeploy.conf"),
        "EDEPLOY_BENCH_LOCK": "flock",
    }


def parse_cgi_output(out):
    head, _, body = out.partition(b"\r\n\r\n")
    status = 200
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"status:"):
            status = int(line.split()[1])
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


def pct(values, p):
    """Nearest-rank percentile."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


# ---------------------------------------------------------------------------
# P1: one CGI execution at a time


def p1(ours, python, ours_site, py_site, runs, out_path, tmpfs_site="", baseline="", baseline_site=""):
    runs = int(runs)
    bodies = [multipart(node_hw(1, i)) for i in range(runs + WARMUP)]
    spool = os.path.join(os.path.dirname(ours_site), "p1-body")
    sides = {
        "ours": ([ours], ours_site),
        "python": ([sys.executable, python], py_site),
        # The floor: exec of a program that does nothing, same harness.
        "true": (["/bin/true"], ours_site),
        # Ours refusing a GET: start-up and exit, no configuration read.
        "ours-get": ([ours], ours_site),
    }
    if tmpfs_site:
        # Ours again with its site on tmpfs: the same work without the
        # cost of the fsyncs.
        sides["ours-tmpfs"] = ([ours], tmpfs_site)
    if baseline:
        # Another build of upload.cgi (BASELINE_CGI), on a site of its own
        # made like ours, in the same rounds.
        sides["baseline"] = ([baseline], baseline_site)
    times = {k: [] for k in sides}
    answers = {k: [] for k in sides}
    errors = {k: 0 for k in sides}
    spent = {k: 0.0 for k in sides}
    stopped = {}
    for i in range(runs + WARMUP):
        # The body as lighttpd hands it over by default: a spooled file.
        with open(spool, "wb") as f:
            f.write(bodies[i])
        for side, (argv, site) in sides.items():
            if side in stopped:
                continue
            env = cgi_env(site, len(bodies[i]))
            if side == "ours-get":
                env["REQUEST_METHOD"] = "GET"
            with open(spool, "rb") as body, open(os.path.join(site, "cgi-stderr.log"), "ab") as err:
                start = time.perf_counter()
                r = subprocess.run(argv, stdin=body, stdout=subprocess.PIPE, stderr=err, env=env)
                took = time.perf_counter() - start
            spent[side] += took
            if spent[side] > P1_SIDE_BUDGET:
                stopped[side] = max(0, i + 1 - WARMUP)
            if i < WARMUP:
                continue
            times[side].append(took)
            if side in ("true", "ours-get"):
                continue
            status, answer = parse_cgi_output(r.stdout)
            if status != 200 or not answer or "vars" not in answer:
                errors[side] += 1
                answers[side].append(None)
            else:
                answers[side].append(answer["vars"].get("ip"))
    os.unlink(spool)
    n = min(len(answers["ours"]), len(answers["python"]))
    same = sum(1 for a, b in zip(answers["ours"], answers["python"]) if a is not None and a == b)
    result = {"runs": runs, "warmup": WARMUP, "stopped_early": stopped, "same_ip": same, "compared": n}
    if baseline:
        result["baseline_name"] = os.path.basename(baseline)
    for side in sides:
        t = times[side]
        result[side] = {
            "n": len(t),
            "median_ms": statistics.median(t) * 1e3,
            "p90_ms": pct(t, 90) * 1e3,
            "min_ms": min(t) * 1e3,
            "max_ms": max(t) * 1e3,
            "errors": errors[side],
            "distinct_ips": len(set(a for a in answers[side] if a)),
        }
        print("p1 %-6s %s" % (side, json.dumps(result[side])), file=sys.stderr)
    print("p1 same IP for the same node on both sides: %d of %d" % (same, n), file=sys.stderr)
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)


# ---------------------------------------------------------------------------
# P2: concurrent uploads through lighttpd


async def upload(port, path, body, gate):
    await gate.wait()
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        "POST %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\nUser-Agent: bench-cgi\r\n"
        "Accept: */*\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
        % (path, port, CONTENT_TYPE, len(body))
    ).encode()
    writer.write(head + body)
    await writer.drain()
    data = await reader.read()
    end = time.perf_counter()
    writer.close()
    status_line, _, rest = data.partition(b"\r\n")
    status = int(status_line.split()[1])
    _, _, payload = rest.partition(b"\r\n\r\n")
    return start, end, status, payload


async def storm(port, path, bodies, timeout, stop):
    gate = asyncio.Event()
    tasks = [asyncio.ensure_future(upload(port, path, b, gate)) for b in bodies]
    await asyncio.sleep(0.2)  # every task is waiting at the gate
    t0 = time.perf_counter()
    gate.set()
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    # CGIs still running are stopped before their connections close (the
    # web server would kill them at any instant otherwise).
    killed = stop() if pending else 0
    for t in pending:
        t.cancel()
    results = []
    for t in tasks:
        if t in done and t.exception() is None:
            results.append(t.result())
        elif t in done:
            results.append(repr(t.exception()))
        else:
            results.append(None)
    return t0, results, killed


def children(pid):
    """Live (not zombie) children of pid."""
    out = []
    try:
        for task in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                out.extend(int(c) for c in f.read().split())
    except OSError:
        pass
    live = []
    for c in out:
        try:
            with open("/proc/%d/stat" % c) as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    live.append(c)
        except OSError:
            pass
    return live


def take_lock(path, kind, budget=60.0):
    """The site's lock, the way its CGI takes it; None if not had in time."""
    deadline = time.monotonic() + budget
    if kind == "package":
        while time.monotonic() < deadline:
            try:
                return os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR)
            except FileExistsError:
                time.sleep(0.005)
        return None
    import fcntl
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    while time.monotonic() < deadline:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            time.sleep(0.005)
    os.close(fd)
    return None


def stop_stragglers(server_pid, lockfile, kind):
    """CGIs still running when the client gave up: killed (by pid) while
    this process holds the site's lock, so none dies inside a commit and
    the files can be read. Returns how many were killed."""
    pids = children(server_pid)
    if not pids:
        return 0
    fd = take_lock(lockfile, kind)
    pids = children(server_pid)
    for pid in pids:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while any(p in children(server_pid) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.01)
    if fd is not None:
        os.close(fd)
        if kind == "package":
            os.unlink(lockfile)
    else:
        print("p2: could not take the lock; the files may be mid-write", file=sys.stderr)
    return len(pids)


def p2(label, port, path, site, nodes, timeout, out_path, server_pid, lock_kind):
    port, nodes, timeout = int(port), int(nodes), float(timeout)
    hws = [node_hw(2, i) for i in range(nodes)]
    bodies = [multipart(h) for h in hws]
    lockfile = os.path.join(site, "edeploy.lock")
    t0, results, killed = asyncio.run(storm(
        port, path, bodies, timeout,
        lambda: stop_stragglers(int(server_pid), lockfile, lock_kind)))
    latencies, ends, statuses, ips, failures = [], [], {}, {}, []
    for i, r in enumerate(results):
        if r is None:
            failures.append("node %d: no answer within %.0f s" % (i, timeout))
            continue
        if isinstance(r, str):
            failures.append("node %d: %s" % (i, r))
            continue
        start, end, status, payload = r
        latencies.append(end - start)
        ends.append(end)
        statuses[status] = statuses.get(status, 0) + 1
        if status == 200:
            try:
                ips[i] = json.loads(payload)["vars"]["ip"]
            except (ValueError, KeyError, TypeError):
                failures.append("node %d: 200 without vars.ip: %r" % (i, payload[:200]))
        else:
            failures.append("node %d: %d %r" % (i, status, payload[:200]))
    # What the files say.
    config = os.path.join(site, "config")
    with open(os.path.join(config, "vm.cmdb")) as f:
        entries = ast.literal_eval(f.read())
    with open(os.path.join(config, "state")) as f:
        state = ast.literal_eval(f.read())
    used = [e for e in entries if e.get("used")]
    used_ips = [e.get("ip") for e in used]
    macs = {}
    for e in used:
        macs.setdefault(e.get("mac"), []).append(e.get("ip"))
    # eth0 of node i is its $mac.
    expected_mac = {i: "52:02:%02x:%02x:00:01" % ((i >> 8) & 255, i & 255) for i in range(nodes)}
    mismatched = [i for i, ip in ips.items() if macs.get(expected_mac[i]) != [ip]]
    answered_ips = list(ips.values())
    result = {
        "label": label,
        "timeout_s": timeout,
        "killed_after_timeout": killed,
        "nodes": nodes,
        "answered": len(latencies),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "total_s": (max(ends) - t0) if ends else None,
        "p50_ms": pct(latencies, 50) * 1e3 if latencies else None,
        "p99_ms": pct(latencies, 99) * 1e3 if latencies else None,
        "max_ms": max(latencies) * 1e3 if latencies else None,
        "dup_ips_answers": len(answered_ips) - len(set(answered_ips)),
        "dup_ips_cmdb": len(used_ips) - len(set(used_ips)),
        "cmdb_used": len(used),
        "macs_with_two_entries": sum(1 for v in macs.values() if len(v) > 1),
        "answers_not_matching_cmdb": len(mismatched),
        "state": state,
        "failures": failures[:10],
        "failure_count": len(failures),
    }
    print("p2 %s %s" % (path, json.dumps(result)), file=sys.stderr)
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)


# ---------------------------------------------------------------------------
# The table


def table(p1_path, machine_path, *p2_paths):
    r1 = json.load(open(p1_path))
    p2s = [json.load(open(p)) for p in p2_paths]
    with open(machine_path) as f:
        print(f.read().rstrip())
    print()
    o, y = r1["ours"], r1["python"]
    print("### P1: one CGI execution (exec with the CGI environment, body on stdin)")
    print()
    print("| | runs | median | p90 | min | max | errors |")
    print("|---|---|---|---|---|---|---|")
    rows = [
        ("upload.cgi (ours)", "ours"),
        ("Python CGI (hardware %s)" % REFERENCE, "python"),
        ("/bin/true (spawn floor of the harness)", "true"),
        ("upload.cgi (ours) answering a GET with 405 (start-up only)", "ours-get"),
        ("upload.cgi (ours), site on tmpfs (no fsync cost)", "ours-tmpfs"),
        ("upload.cgi, baseline build (BASELINE_CGI=%s)" % r1.get("baseline_name", ""), "baseline"),
    ]
    for name, key in rows:
        if key not in r1:
            continue
        s = r1[key]
        print("| %s | %d | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %s |" % (
            name, s["n"], s["median_ms"], s["p90_ms"], s["min_ms"], s["max_ms"],
            s["errors"] if key not in ("true", "ours-get") else "-"))
    ratio = y["median_ms"] / o["median_ms"]
    print()
    print("Median ratio Python / ours: **%.1f×**. Goals: ours ≤ 2 ms median: %s; ≥ 20×: %s." % (
        ratio, "met" if o["median_ms"] <= 2 else "missed", "met" if ratio >= 20 else "missed"))
    print("Same IP handed to the same node on both sides: %d of %d." % (r1["same_ip"], r1["compared"]))
    if "baseline" in r1:
        print("Median ratio baseline build / ours: %.2f×." % (r1["baseline"]["median_ms"] / o["median_ms"]))
    if r1.get("stopped_early"):
        print("Stopped early (time budget): %s." % r1["stopped_early"])
    print()
    print("### P2: %d concurrent uploads through lighttpd on 127.0.0.1" % p2s[0]["nodes"])
    print()
    print("| | answered | statuses | total | p50 | p99 | max | duplicate IPs (answers / CMDB) | answers ≠ CMDB | state after |")
    print("|---|---|---|---|---|---|---|---|---|---|")

    def ms(v):
        return "%.0f ms" % v if v is not None else "-"

    for s in p2s:
        total = "%.2f s" % s["total_s"] if s["total_s"] is not None else "-"
        if s["answered"] < s["nodes"]:
            total = "> %.0f s (client gave up)" % s["timeout_s"]
        print("| %s | %d / %d | %s | %s | %s | %s | %s | %d / %d | %d | `%s` |" % (
            s["label"], s["answered"], s["nodes"],
            ", ".join("%s×%s" % (v, k) for k, v in s["statuses"].items()) or "-",
            total, ms(s["p50_ms"]), ms(s["p99_ms"]), ms(s["max_ms"]),
            s["dup_ips_answers"], s["dup_ips_cmdb"], s["answers_not_matching_cmdb"], s["state"]))
    print()
    o2, y2 = p2s[0], p2s[1]
    ok = o2["answered"] == o2["nodes"] and o2["total_s"] is not None and o2["total_s"] <= 2.0
    dups = o2["dup_ips_answers"] + o2["dup_ips_cmdb"]
    print("Goals for ours: all answered within 2 s: %s; 0 duplicates: %s." % (
        "met" if ok else "missed", "met" if dups == 0 else "missed"))
    if o2["total_s"] and y2["total_s"] and y2["answered"] == y2["nodes"]:
        print("Total time ratio %s / ours: %.1f×." % (y2["label"], y2["total_s"] / o2["total_s"]))
    for s in p2s:
        if s.get("killed_after_timeout"):
            print("\n%s: %d CGIs still running when the client gave up were killed (holding the site's lock) before the files were read." % (
                s["label"], s["killed_after_timeout"]))
        if s["failure_count"]:
            print("\n%s: %d requests without a 200, first ones: %s" % (
                s["label"], s["failure_count"], s["failures"][:3]))


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "write-cgi":
        write_cgi(*args)
    elif cmd == "site":
        make_site(args[0], int(args[1]), int(args[2]))
    elif cmd == "p1":
        p1(*args)
    elif cmd == "p2":
        p2(*args)
    elif cmd == "table":
        table(*args)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
