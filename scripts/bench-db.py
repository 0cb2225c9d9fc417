"""Benchmarks of decisions on PostgreSQL beside the file backend (see
scripts/bench-db and docs/benchmarks.md, "Decisions on PostgreSQL").

Reuses the request helpers of scripts/bench-cgi.py (the KVM fixture with
unique MACs, the multipart body, the CGI environment, the asyncio storm).
"""

import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("bench_cgi", os.path.join(HERE, "bench-cgi.py"))
bc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bc)

WARMUP = 30
# Each site takes its nodes in blocks of BLOCK requests in a row, the
# sites (every side of every size) taking turns block by block: a
# request follows one of its own kind, as on a server (P1 is one request
# at a time), while a change of the machine's load over the run still
# falls on every side and size alike.
BLOCK = 20


def ip_ranges(entries):
    """A generate() IP pattern of exactly ENTRIES addresses (a multiple of
    200): 10.A.B.1-200 over as many B (and A) as needed."""
    blocks = entries // 200
    if entries % 200 or blocks < 1:
        raise SystemExit("ENTRIES must be a multiple of 200")
    if blocks <= 250:
        return "10.1.0-%d.1-200" % (blocks - 1)
    if blocks % 250:
        raise SystemExit("above 50000, ENTRIES must be a multiple of 50000")
    return "10.1-%d.0-249.1-200" % (blocks // 250)


def make_site(d, count, entries, database=None):
    """DIR/config from the shipped example, state [('vm', COUNT)], a
    generate() CMDB of ENTRIES; DIR/edeploy.conf, with DATABASE when
    given."""
    health = os.path.join(d, "health")
    os.makedirs(health, exist_ok=True)
    bc.write_site(
        d, count,
        "generate({'hostname': 'node1-%d',\n"
        "          'ip': '%s',\n"
        "          'netmask': '255.0.0.0'})\n" % (entries, ip_ranges(entries)),
        ["HEALTHDIR = %s" % health] + (["DATABASE = %s" % database] if database else []),
    )


def admin(exe, site, *args):
    env = dict(os.environ, EDEPLOY_CONF=os.path.join(site, "edeploy.conf"))
    out = subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise SystemExit("edeploy-admin %s: %s" % (" ".join(args), out.stderr.strip()))
    return out.stdout.strip()


def settle(url):
    """Vacuums and analyzes the database of URL and checkpoints the
    server, so that what an import leaves the server to do in the
    background (vacuuming and analyzing the new rows, writing the pages
    out) is done before any request is timed, on whichever side."""
    out = subprocess.run(["psql", "-qX", url, "-c", "VACUUM ANALYZE", "-c", "CHECKPOINT"],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise SystemExit("psql %s: %s" % (url, out.stderr.strip()))


def run_cgi(cgi, site, body, spool):
    with open(spool, "wb") as f:
        f.write(body)
    with open(spool, "rb") as stdin, open(os.path.join(site, "cgi-stderr.log"), "ab") as err:
        start = time.perf_counter()
        out = subprocess.run([cgi], stdin=stdin, stdout=subprocess.PIPE, stderr=err,
                             env=bc.cgi_env(site, len(body)), timeout=60)
        took = time.perf_counter() - start
    status, answer = bc.parse_cgi_output(out.stdout)
    if status != 200 or not answer or not answer.get("vars", {}).get("ip"):
        raise SystemExit("%s: answered %s %r" % (site, status, out.stdout[-300:]))
    return took, answer["vars"]["ip"]


def sizes(cgi, exe, work, url_of, bouncer_of, sizes_list, runs, out_path, baseline=""):
    """For each CMDB size, a site on files, one on the database and, with
    BOUNCER_OF, one on the same database through pgbouncer (and, with
    BASELINE, another upload.cgi, one more through pgbouncer on a
    database of its own, run by BASELINE), take RUNS new nodes each; the
    i-th node gets the same IP on all the sides of a size. Every site is
    made (and every database imported and settled) first; then the sites
    take turns in blocks of BLOCK requests, size after size and side
    after side, so that a change of the machine's speed during the run
    falls on every size and side alike."""
    rows = []
    sites = []
    databases = []

    def on_database(name, n, url, run):
        """A site of N entries on the database URL (initialized, then the
        site's files imported), run by RUN: what the import moved and
        how long init and import took."""
        site = os.path.join(work, "%s-%d" % (name, n))
        make_site(site, 10 * n, n, url)
        t0 = time.perf_counter()
        admin(exe, site, "db", "init")
        moved = admin(exe, site, "db", "import", os.path.join(site, "config"))
        took = time.perf_counter() - t0
        sites.append((n, name, site, run))
        databases.append(url)
        return moved, took

    for n in sizes_list:
        fsite = os.path.join(work, "file-%d" % n)
        make_site(fsite, 10 * n, n)
        sites.append((n, "file", fsite, cgi))
        moved, took_import = on_database("db", n, url_of("b%d" % n), cgi)
        rows.append({"entries": n, "import": moved, "import_s": took_import})
        if bouncer_of:
            # Its own database, the same import.
            on_database("bouncer", n, bouncer_of("c%d" % n), cgi)
            if baseline:
                on_database("baseline", n, bouncer_of("e%d" % n), baseline)
    for url in databases:
        settle(url)
    spool = os.path.join(work, "body")
    times = {(n, name): [] for n, name, _, _ in sites}
    got = {}
    total = runs + WARMUP
    for first in range(0, total, BLOCK):
        block = range(first, min(first + BLOCK, total))
        bodies = [bc.multipart(bc.node_hw(7, i)) for i in block]
        for n, name, site, run in sites:
            for i, body in zip(block, bodies):
                took, ip = run_cgi(run, site, body, spool)
                got.setdefault((n, i), {})[name] = ip
                if i >= WARMUP:
                    times[(n, name)].append(took)
    for (n, i), ips in sorted(got.items()):
        if len(set(ips.values())) != 1:
            raise SystemExit("%d entries, node %d: %r" % (n, i, ips))
    for row in rows:
        n = row["entries"]
        names = [name for m, name, _, _ in sites if m == n]
        for name in names:
            row[name + "_p50"] = bc.pct(times[(n, name)], 50)
            row[name + "_p90"] = bc.pct(times[(n, name)], 90)
        print("== %d entries: %s (medians of %d)" % (
            n, ", ".join("%s %.2f ms" % (k, row[k + "_p50"] * 1e3) for k in names), runs),
            file=sys.stderr)
    with open(out_path, "w") as f:
        json.dump({"runs": runs, "rows": rows}, f, indent=1)


def lighttpd_site(cgi, site, port):
    """lighttpd's configuration for SITE: the shipped
    etc/lighttpd/edeploy.conf with its Debian paths moved into the site,
    limits raised so that the storm is accepted at once."""
    shutil.copy(cgi, os.path.join(site, "upload.cgi"))
    with open(os.path.join(bc.ROOT, "etc", "lighttpd", "edeploy.conf")) as f:
        block = (f.read()
                 .replace("/usr/lib/cgi-bin/upload.cgi", os.path.join(site, "upload.cgi"))
                 .replace("/etc/edeploy.conf", os.path.join(site, "edeploy.conf"))
                 .replace("/var/log/lighttpd/cgi-stderr.log", os.path.join(site, "cgi-stderr.log")))
    with open(os.path.join(site, "edeploy-site.conf"), "w") as f:
        f.write(block)
    os.makedirs(os.path.join(site, "www"), exist_ok=True)
    conf = os.path.join(site, "lighttpd.conf")
    with open(conf, "w") as f:
        f.write(
            'server.document-root = "%s/www"\nserver.bind = "127.0.0.1"\nserver.port = %d\n'
            'server.errorlog = "%s/error.log"\n'
            'server.modules = ("mod_access", "mod_alias", "mod_cgi", "mod_setenv")\n'
            'mimetype.assign = ("" => "application/octet-stream")\n'
            "server.max-fds = 8192\nserver.max-connections = 4096\nserver.listen-backlog = 4096\n"
            'include "%s/edeploy-site.conf"\n' % (site, port, site, site)
        )
    return conf


def p2(cgi, exe, work, url_of, nodes, servers, timeout, out_path):
    """NODES distinct nodes at once, spread over SERVERS lighttpd sharing
    one database: state [('vm', NODES)], a CMDB of NODES entries rounded
    up; every node must get a distinct IP and the quota be exact."""
    entries = (nodes + 199) // 200 * 200
    sites, procs, ports = [], [], []
    try:
        for k in range(servers):
            s = os.path.join(work, "p2-%d" % k)
            make_site(s, nodes, entries, url_of("p2"))
            if k == 0:
                admin(exe, s, "db", "init")
                admin(exe, s, "db", "import", os.path.join(s, "config"))
            port = bc_free_port()
            conf = lighttpd_site(cgi, s, port)
            procs.append(subprocess.Popen(["/usr/sbin/lighttpd", "-D", "-f", conf]))
            sites.append(s)
            ports.append(port)
        for port in ports:
            wait_port(port)
        bodies = [bc.multipart(bc.node_hw(9, i)) for i in range(nodes)]
        per = [bodies[k::servers] for k in range(servers)]

        async def all_storms():
            return await asyncio.gather(*[
                bc.storm(port, "/cgi-bin/upload.cgi", b, timeout, lambda: 0)
                for port, b in zip(ports, per)
            ])

        started = time.perf_counter()
        outcomes = asyncio.run(all_storms())
        total = time.perf_counter() - started
        latencies, ips, statuses, errors = [], set(), {}, {}
        for t0, results, _ in outcomes:
            for r in results:
                if not isinstance(r, tuple):
                    statuses["none"] = statuses.get("none", 0) + 1
                    continue
                start, end, status, payload = r
                statuses[status] = statuses.get(status, 0) + 1
                latencies.append(end - t0)
                if status == 200:
                    ips.add(json.loads(payload)["vars"]["ip"])
                else:
                    try:
                        why = json.loads(payload).get("error", "")
                    except ValueError:
                        why = payload[:200].decode(errors="replace")
                    # Without the node's name, which starts every sentence.
                    why = why.split(": ", 1)[-1][:300]
                    errors[why] = errors.get(why, 0) + 1
        ok = statuses.get(200, 0)
        if len(ips) != ok:
            raise SystemExit("P2: %d answers 200 but %d distinct IPs" % (ok, len(ips)))
        result = {
            "nodes": nodes, "servers": servers, "total_s": total,
            "p50": bc.pct(latencies, 50), "p99": bc.pct(latencies, 99),
            "statuses": {str(k): v for k, v in statuses.items()},
            "distinct_ips": len(ips),
            "errors": sorted(errors.items(), key=lambda kv: -kv[1])[:3],
        }
        print("== P2: %d nodes over %d servers in %.1f s, statuses %s"
              % (nodes, servers, total, result["statuses"]), file=sys.stderr)
        with open(out_path, "w") as f:
            json.dump(result, f, indent=1)
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def bc_free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port):
    import socket
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("lighttpd did not listen on 127.0.0.1:%d within 10 s" % port)


def table(sizes_path, p2_path, p2b_path=""):
    with open(sizes_path) as f:
        s = json.load(f)
    rows = s["rows"]
    bouncer = all("bouncer_p50" in r for r in rows)
    baseline = bouncer and all("baseline_p50" in r for r in rows)
    head = "| CMDB entries | files: median (p90) | PostgreSQL: median (p90) |"
    line = "|---|---|---|"
    if bouncer:
        head += " PostgreSQL through pgbouncer: median (p90) |"
        line += "---|"
    if baseline:
        head += " the baseline through pgbouncer: median (p90) | this build / the baseline |"
        line += "---|---|"
    print(head + " PostgreSQL / files |")
    print(line + "---|")
    for r in rows:
        cells = "| %d | %.2f ms (%.2f) | %.2f ms (%.2f) |" % (
            r["entries"], r["file_p50"] * 1e3, r["file_p90"] * 1e3,
            r["db_p50"] * 1e3, r["db_p90"] * 1e3)
        if bouncer:
            cells += " %.2f ms (%.2f) |" % (r["bouncer_p50"] * 1e3, r["bouncer_p90"] * 1e3)
        if baseline:
            cells += " %.2f ms (%.2f) | %.2f |" % (
                r["baseline_p50"] * 1e3, r["baseline_p90"] * 1e3,
                r["bouncer_p50"] / r["baseline_p50"])
        print(cells + " %.2f |" % (r["db_p50"] / r["file_p50"]))
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        print()
        msg = "- %d entries vs %d: files %.2f×, PostgreSQL %.2f×" % (
            last["entries"], first["entries"],
            last["file_p50"] / first["file_p50"], last["db_p50"] / first["db_p50"])
        if bouncer:
            msg += ", through pgbouncer %.2f×" % (last["bouncer_p50"] / first["bouncer_p50"])
        print(msg)
    for r in rows:
        print("- import of %d entries: %.1f s (%s)" % (r["entries"], r["import_s"], r["import"]))
    for path, how in ((p2_path, ""), (p2b_path, " through pgbouncer")):
        if not path or not os.path.exists(path):
            continue
        with open(path) as f:
            p = json.load(f)
        print()
        print("P2 on PostgreSQL%s: %d nodes at once over %d lighttpd servers: all answered in "
              "%.1f s, p50 %.2f s, p99 %.2f s; statuses %s; %d distinct IPs" % (
                  how, p["nodes"], p["servers"], p["total_s"], p["p50"], p["p99"],
                  p["statuses"], p["distinct_ips"]))
        for why, n in p.get("errors", []):
            print("  - %d × %s" % (n, why))


def main(argv):
    cmd = argv[1]
    if cmd == "sizes":
        cgi, exe, work, url_fmt, bouncer_fmt, runs, out = argv[2:9]
        sizes_list = [int(x) for x in argv[9].split(",")]
        baseline = argv[10] if len(argv) > 10 else ""
        bouncer = (lambda db: bouncer_fmt % db) if bouncer_fmt else None
        sizes(cgi, exe, work, lambda db: url_fmt % db, bouncer, sizes_list, int(runs), out,
              baseline)
    elif cmd == "p2":
        cgi, exe, work, url_fmt, dbname, nodes, servers, timeout, out = argv[2:11]
        p2(cgi, exe, work, lambda _: url_fmt % dbname, int(nodes), int(servers), float(timeout), out)
    elif cmd == "table":
        table(argv[2], argv[3] if len(argv) > 3 else "", argv[4] if len(argv) > 4 else "")
    else:
        raise SystemExit("bench-db.py: sizes | p2 | table")


if __name__ == "__main__":
    main(sys.argv)
