//! A real web server running `upload.cgi`, for the integration tests.
//!
//! [`Site::start`] builds a site in a temporary directory (config dir,
//! HWDIR, LOGDIR, `edeploy.conf`, the CGI binary copied as
//! `cgi-bin/upload.cgi`, a web-server configuration of its own), starts
//! Apache (`apache2 -DFOREGROUND`, event MPM + mod_cgid, Debian's stock
//! CGI setup) or lighttpd (`lighttpd -D`, mod_cgi) on 127.0.0.1 and a free
//! port, and waits (at most 10 s) until the port answers. Dropping the
//! site stops the server. Requests go through the real `curl`, exactly as
//! a node sends them.
//!
//! Run as root (as CI does), the servers run their CGIs as `www-data`,
//! like a Debian install, so the site's files are handed to that user.
//!
//! With [`Options::tls`] the site is served over HTTPS only, through the
//! shipped TLS snippets (`etc/apache2/edeploy-tls.conf` with mod_ssl,
//! `etc/lighttpd/edeploy-tls.conf` with mod_openssl); [`Pki`] makes the
//! throw-away CA and certificates with the `openssl` CLI.
//!
//! [`node_exec`] is the start of the command runner of a fake node that
//! the installer runs on.

#![allow(dead_code)]

use edeploy::exec::{Fake, Reply, When};
use std::fs;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `suite!(a, b)`: tests `apache::a`, `lighttpd::a`, … running the
/// functions `a(Kind)`, `b(Kind)` of the including file on each server.
#[allow(unused_macros)]
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod apache {
            $(#[test] fn $name() { super::$name(super::Kind::Apache) })*
        }
        mod lighttpd {
            $(#[test] fn $name() { super::$name(super::Kind::Lighttpd) })*
        }
    };
}

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The CGIs a site serves: (binary, name under `/cgi-bin/`).
const CGIS: [(&str, &str); 3] = [
    (env!("CARGO_BIN_EXE_upload-cgi"), "upload.cgi"),
    (env!("CARGO_BIN_EXE_upload-health-cgi"), "upload-health.cgi"),
    (env!("CARGO_BIN_EXE_status-cgi"), "status.cgi"),
];

/// Which web server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Apache,
    Lighttpd,
}

impl Kind {
    fn binary(self) -> &'static str {
        match self {
            Kind::Apache => "/usr/sbin/apache2",
            Kind::Lighttpd => "/usr/sbin/lighttpd",
        }
    }

    fn package(self) -> &'static str {
        match self {
            Kind::Apache => "apache2",
            Kind::Lighttpd => "lighttpd",
        }
    }
}

/// What a site is built with.
#[derive(Debug, Clone)]
pub struct Options {
    /// Files copied into CONFIGDIR: the shipped example, then these
    /// (relative to `tests/fixtures/cgi`), then `files`.
    pub fixtures: Vec<&'static str>,
    /// Files written into CONFIGDIR (name, text), last.
    pub files: Vec<(String, String)>,
    /// Lines appended to `[SERVER]` of `edeploy.conf` (`{root}` is the
    /// site's directory).
    pub conf: String,
    /// Extra environment for the CGI, passed through the web server.
    pub env: Vec<(String, String)>,
    /// MAXUPLOAD, also the web server's own request-body limit.
    pub max_upload: u64,
    /// HTTPS with this certificate instead of plain HTTP.
    pub tls: Option<Tls>,
}

/// The certificate a site serves over HTTPS, and the CA that signed it
/// (what a client pins).
#[derive(Debug, Clone)]
pub struct Tls {
    /// The server's certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The CA certificate that signed it (PEM).
    pub ca: PathBuf,
}

/// A self-signed server certificate for `ip` (an IP subjectAltName), its
/// own CA (what an operator without a CA pins), in a temporary directory
/// kept as long as the returned guard.
pub fn self_signed(ip: &str) -> (Tls, tempfile::TempDir) {
    let dir = tempfile::Builder::new()
        .prefix("edeploy-pki-")
        .tempdir()
        .expect("temp dir");
    let subj = format!("/CN={ip}");
    let san = format!("subjectAltName=IP:{ip}");
    openssl(
        dir.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-subj",
            &subj,
            "-addext",
            &san,
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ],
    );
    let d = dir.path();
    let tls = Tls {
        cert: d.join("server.pem"),
        key: d.join("server.key"),
        ca: d.join("server.pem"),
    };
    (tls, dir)
}

/// A throw-away CA made with the `openssl` CLI in a temporary directory
/// (EC P-256 keys, valid two days), and the certificates it signs.
pub struct Pki {
    dir: tempfile::TempDir,
    name: String,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl (apt-get install -y openssl)");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    /// A new CA whose subject is `CN=<name>`.
    pub fn new(name: &str) -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("edeploy-pki-")
            .tempdir()
            .expect("temp dir");
        let subj = format!("/CN={name}");
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                &subj,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        Pki {
            dir,
            name: name.to_string(),
        }
    }

    /// The CA's certificate (PEM).
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A server certificate for `ip` (an IP subjectAltName), signed by
    /// this CA.
    pub fn server(&self, ip: &str) -> Tls {
        let d = self.dir.path();
        let base = format!("server-{ip}");
        let (key, csr, cert) = (
            format!("{base}.key"),
            format!("{base}.csr"),
            format!("{base}.pem"),
        );
        let ext = format!("{base}.ext");
        fs::write(
            d.join(&ext),
            format!(
                "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
                 extendedKeyUsage=serverAuth
subjectAltName=IP:{ip}
"
            ),
        )
        .expect("extensions");
        let subj = format!("/CN={ip} ({})", self.name);
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &subj,
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &cert,
                "-extfile",
                &ext,
            ],
        );
        Tls {
            cert: d.join(cert),
            key: d.join(key),
            ca: self.ca(),
        }
    }
}

impl Default for Options {
    fn default() -> Options {
        Options {
            fixtures: vec![
                "state",
                "virtio.specs",
                "virtio.configure",
                "hp.specs",
                "hp.cmdb",
                "hp.configure",
                "dell.specs",
                "dell.cmdb",
                "dell.configure",
            ],
            files: Vec::new(),
            conf: String::new(),
            env: Vec::new(),
            max_upload: 1 << 20,
            tls: None,
        }
    }
}

/// A running web server with its site.
pub struct Site {
    pub kind: Kind,
    pub port: u16,
    /// Served over HTTPS with this certificate.
    pub tls: Option<Tls>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// What `curl` got.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        match serde_json::from_str(&self.body) {
            Ok(v) => v,
            Err(e) => panic!(
                "not JSON ({e}): status {} body {:?}",
                self.status, self.body
            ),
        }
    }

    /// The `error` sentence of an error answer.
    pub fn error(&self) -> String {
        match self.json().get("error").and_then(|e| e.as_str()) {
            Some(s) => s.to_string(),
            None => panic!("no \"error\" in {:?}", self.body),
        }
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local address").port()
}

impl Site {
    /// Builds the site and starts `kind` on it. Panics (failing the test)
    /// with a clear message when the server is not installed.
    pub fn start(kind: Kind, opts: Options) -> Site {
        assert!(
            Path::new(kind.binary()).exists(),
            "{} is not installed: the web-server tests need it \
             (apt-get install -y apache2 lighttpd curl; .ci/run does this)",
            kind.binary()
        );
        assert!(
            Path::new("/usr/bin/curl").exists(),
            "curl is not installed: apt-get install -y curl"
        );
        let dir = tempfile::Builder::new()
            .prefix("edeploy-site-")
            .tempdir()
            .expect("temp dir");
        let root = dir.path().to_path_buf();
        for d in [
            "config", "hw", "logs", "health", "cgi-bin", "run", "www", "errors", "lab",
        ] {
            fs::create_dir_all(root.join(d)).expect("site dirs");
        }
        let example = Path::new(ROOT).join("share/examples/config");
        for entry in fs::read_dir(&example).expect("the shipped example config") {
            let entry = entry.expect("example entry");
            fs::copy(entry.path(), root.join("config").join(entry.file_name()))
                .expect("copy example");
        }
        let fixtures = Path::new(ROOT).join("tests/fixtures/cgi");
        for f in &opts.fixtures {
            fs::copy(fixtures.join(f), root.join("config").join(f)).expect("copy fixture");
        }
        for f in ["state", "labvm.specs", "labvm.configure"] {
            fs::copy(fixtures.join("lab").join(f), root.join("lab").join(f)).expect("copy lab");
        }
        for (name, text) in &opts.files {
            fs::write(root.join("config").join(name), text).expect("write config file");
        }
        let r = root.display().to_string();
        fs::write(
            root.join("edeploy.conf"),
            format!(
                "# Written by the test harness.\n[SERVER]\nCONFIGDIR = {r}/config\n\
                 HWDIR = {r}/hw\nLOGDIR = {r}/logs\nHEALTHDIR = {r}/health\nLOCKFILE = {r}/run/edeploy.lock\n\
                 MAXUPLOAD = {}\n{}\n\n[lab]\nCONFIGDIR = {r}/lab\n",
                opts.max_upload,
                opts.conf.replace("{root}", &r)
            ),
        )
        .expect("edeploy.conf");
        for (binary, name) in CGIS {
            let cgi = root.join("cgi-bin").join(name);
            fs::copy(binary, &cgi).unwrap_or_else(|e| panic!("copy {name}: {e}"));
            fs::set_permissions(&cgi, fs::Permissions::from_mode(0o755)).expect("chmod cgi");
        }
        fs::copy(
            Path::new(ROOT).join("etc/apache2/413.json"),
            root.join("errors/413.json"),
        )
        .expect("413 document");

        if let Some(tls) = &opts.tls {
            fs::create_dir_all(root.join("tls")).expect("tls dir");
            fs::copy(&tls.cert, root.join("tls/server.pem")).expect("copy the certificate");
            fs::copy(&tls.key, root.join("tls/server.key")).expect("copy the key");
        }
        let mut site = Site {
            kind,
            port: 0,
            tls: opts.tls.clone(),
            dir,
            child: None,
        };
        let mut last_failure = String::new();
        // The free port can be taken between our probe and the server's
        // bind: try a few.
        for _ in 0..3 {
            site.port = free_port();
            let conf = match kind {
                Kind::Apache => apache_conf(&root, site.port, &opts),
                Kind::Lighttpd => lighttpd_conf(&root, site.port, &opts),
            };
            let conf_path = root.join("run/server.conf");
            fs::write(&conf_path, conf).expect("server config");
            site.hand_over();
            let mut cmd = Command::new(kind.binary());
            match kind {
                Kind::Apache => cmd.arg("-f").arg(&conf_path).arg("-DFOREGROUND"),
                Kind::Lighttpd => cmd.arg("-D").arg("-f").arg(&conf_path),
            };
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", kind.binary()));
            site.child = Some(child);
            match site.wait_ready() {
                Ok(()) => return site,
                Err(why) => {
                    last_failure = why;
                    site.stop();
                }
            }
        }
        panic!("{} did not start: {last_failure}", kind.package());
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = e.read_to_string(&mut err);
                    }
                    return Err(format!(
                        "exited with {status}: {err}\nerror log:\n{}",
                        self.error_log()
                    ));
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "port {} did not answer within 10 s\nerror log:\n{}",
                    self.port,
                    self.error_log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The site's directory.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// Writes a file of the site (and hands it to the CGI's user).
    pub fn write(&self, rel: &str, text: &str) {
        fs::write(self.path(rel), text).unwrap_or_else(|e| panic!("{rel}: {e}"));
        self.hand_over();
    }

    /// Makes everything in the site readable and writable by the user the
    /// web server runs CGIs as.
    pub fn hand_over(&self) {
        if !is_root() {
            return;
        }
        let status = Command::new("chown")
            .arg("-R")
            .arg("www-data:www-data")
            .arg(self.dir.path())
            .status()
            .expect("run chown");
        assert!(status.success(), "chown -R www-data failed");
        fs::set_permissions(self.dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    pub fn url(&self) -> String {
        self.url_of("upload.cgi")
    }

    /// The URL of one of the site's CGIs (`upload.cgi`, `upload-health.cgi`,
    /// `status.cgi`).
    pub fn url_of(&self, cgi: &str) -> String {
        self.base_url(&format!("cgi-bin/{cgi}"))
    }

    /// `http://127.0.0.1:PORT/PATH`, or `https://` for a TLS site.
    pub fn base_url(&self, path: &str) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/{path}", self.port)
    }

    /// `--cacert CA` for curl on a TLS site.
    fn curl_tls(&self) -> Vec<String> {
        match &self.tls {
            Some(t) => vec!["--cacert".into(), t.ca.display().to_string()],
            None => Vec::new(),
        }
    }

    /// Runs `curl -s -S <args> URL` and returns the status and body.
    pub fn curl(&self, args: &[&str]) -> Answer {
        let out = Command::new("curl")
            .args(["-s", "-S", "--max-time", "60", "-w", "\n%{http_code}"])
            .args(self.curl_tls())
            .args(args)
            .arg(self.url())
            .stdin(Stdio::null())
            .output()
            .expect("run curl");
        parse_curl(&out.stdout, &out.stderr)
    }

    /// `curl -F file=@FILE [-F k=v]…`, what a node sends.
    pub fn upload(&self, file: &Path, fields: &[&str]) -> Answer {
        let file_arg = format!("file=@{}", file.display());
        let mut args = vec!["-F", file_arg.as_str()];
        for f in fields {
            args.push("-F");
            args.push(f);
        }
        self.curl(&args)
    }

    /// Starts one `curl` upload per file, all at once, and collects the answers
    /// (`None` for a request that got no HTTP answer).
    pub fn upload_all(&self, files: &[PathBuf]) -> Vec<Option<Answer>> {
        let children: Vec<_> = files
            .iter()
            .map(|f| {
                Command::new("curl")
                    .args(["-s", "-S", "--max-time", "120", "-w", "\n%{http_code}"])
                    .args(self.curl_tls())
                    .arg("-F")
                    .arg(format!("file=@{}", f.display()))
                    .arg(self.url())
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("start curl")
            })
            .collect();
        children
            .into_iter()
            .map(|c| {
                let out = c.wait_with_output().expect("wait for curl");
                let text = String::from_utf8_lossy(&out.stdout);
                let (body, code) = text.rsplit_once('\n')?;
                let status = code.trim().parse().ok().filter(|s| *s != 0)?;
                Some(Answer {
                    status,
                    body: body.to_string(),
                })
            })
            .collect()
    }

    /// The web server's error log and where the CGI's stderr goes
    /// (Apache: the error log; lighttpd: `server.breakagelog`, which must
    /// be another file than its error log).
    pub fn error_log(&self) -> String {
        let mut log = fs::read_to_string(self.path("run/error.log")).unwrap_or_default();
        log.push_str(&fs::read_to_string(self.path("run/cgi-stderr.log")).unwrap_or_default());
        log
    }

    /// The CGI's log lines.
    pub fn cgi_log(&self) -> Vec<String> {
        self.error_log()
            .lines()
            .filter_map(|l| l.find("upload.cgi[").map(|i| l[i..].to_string()))
            .collect()
    }

    /// The CGI's log lines once one contains `needle` (the web server may
    /// write a CGI's stderr after it has sent the answer: wait up to 5 s).
    pub fn log_with(&self, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let lines = self.cgi_log();
            if lines.iter().any(|l| l.contains(needle)) || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SIGTERM lets Apache stop its children too; SIGKILL is the fallback.
        // SAFETY: kill(2) on the pid of our own child.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Splits curl's output (`-w '\n%{http_code}'`) into status and body.
pub fn parse_curl(stdout: &[u8], stderr: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(stdout);
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    let status = code.trim().parse().unwrap_or(0);
    if status == 0 {
        panic!(
            "curl got no answer: stdout {:?} stderr {:?}",
            text,
            String::from_utf8_lossy(stderr)
        );
    }
    Answer {
        status,
        body: body.to_string(),
    }
}

/// The shipped `etc/<server>/edeploy.conf`, with its Debian paths
/// replaced by the site's, so the tests run the configuration operators
/// install.
fn shipped(server: &str, root: &Path, opts: &Options) -> String {
    let path = Path::new(ROOT)
        .join("etc")
        .join(server)
        .join("edeploy.conf");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let r = root.display().to_string();
    let mut env = format!("\"EDEPLOY_CONF\" => \"{r}/edeploy.conf\"");
    for (k, v) in &opts.env {
        env.push_str(&format!(", \"{k}\" => \"{v}\""));
    }
    let replaced = text
        .replace("/usr/lib/cgi-bin/", &format!("{r}/cgi-bin/"))
        .replace("/usr/share/edeploy/errors", &format!("{r}/errors"))
        .replace("\"EDEPLOY_CONF\" => \"/etc/edeploy.conf\"", &env)
        .replace("/etc/edeploy.conf", &format!("{r}/edeploy.conf"))
        .replace(
            "/var/log/lighttpd/cgi-stderr.log",
            &format!("{r}/run/cgi-stderr.log"),
        )
        .replace(
            "LimitRequestBody 16777216",
            &format!("LimitRequestBody {}", opts.max_upload),
        );
    assert_ne!(replaced, text, "{}: nothing to adapt", path.display());
    replaced
}

fn apache_conf(root: &Path, port: u16, opts: &Options) -> String {
    let r = root.display();
    let user = if is_root() {
        "User www-data\nGroup www-data\n"
    } else {
        ""
    };
    let env: String = opts
        .env
        .iter()
        .map(|(k, v)| format!("    SetEnv {k} {v}\n"))
        .collect();
    // Debian's stock setup: event MPM with mod_cgid.
    format!(
        "ServerRoot {r}/run\nDefaultRuntimeDir {r}/run\nPidFile {r}/run/server.pid\n\
         ServerName 127.0.0.1\nListen 127.0.0.1:{port}\n\
         LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so\n\
         LoadModule cgid_module /usr/lib/apache2/modules/mod_cgid.so\n\
         LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so\n\
         LoadModule env_module /usr/lib/apache2/modules/mod_env.so\n\
         LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so\n\
         LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so\n\
         LoadModule authz_host_module /usr/lib/apache2/modules/mod_authz_host.so\n\
         {user}ErrorLog {r}/run/error.log\nLogLevel warn\n\
         ScriptSock {r}/run/cgid.sock\nTypesConfig /etc/mime.types\n\
         DocumentRoot {r}/www\n\
         <Directory />\n    Require all denied\n</Directory>\n\
         {site}\n\
         <LocationMatch \"^/cgi-bin/\">\n{env}</LocationMatch>\n{tls}",
        site = shipped("apache2", root, opts),
        tls = if opts.tls.is_some() {
            format!(
                "LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so\n\
                 <Directory {r}/www>\n    Require all granted\n</Directory>\n{}",
                shipped_tls("apache2", "edeploy-tls.conf", root, port)
            )
        } else {
            String::new()
        },
    )
}

/// The shipped TLS snippet `etc/<server>/<name>` with its port and
/// certificate paths replaced by the site's (`ROOT/tls/server.pem`,
/// `ROOT/tls/server.key`).
fn shipped_tls(server: &str, name: &str, root: &Path, port: u16) -> String {
    let path = Path::new(ROOT).join("etc").join(server).join(name);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let r = root.display().to_string();
    let replaced = text
        .replace("*:443", &format!("127.0.0.1:{port}"))
        .replace("\":443\"", &format!("\"127.0.0.1:{port}\""))
        .replace(
            "/etc/ssl/certs/edeploy-server.pem",
            &format!("{r}/tls/server.pem"),
        )
        .replace(
            "/etc/ssl/private/edeploy-server.key",
            &format!("{r}/tls/server.key"),
        );
    assert!(
        !replaced.contains("/etc/ssl/") && replaced.contains(&format!("127.0.0.1:{port}")),
        "{}: the certificate paths or the port were not adapted",
        path.display()
    );
    replaced
}

fn lighttpd_conf(root: &Path, port: u16, opts: &Options) -> String {
    let r = root.display();
    let user = if is_root() {
        "server.username = \"www-data\"\nserver.groupname = \"www-data\"\n"
    } else {
        ""
    };
    // What Debian's lighttpd.conf and `lighty-enable-mod cgi setenv` give,
    // with the limits raised for the boot-storm tests.
    format!(
        "server.document-root = \"{r}/www\"\nserver.bind = \"127.0.0.1\"\n\
         server.port = {port}\nserver.pid-file = \"{r}/run/server.pid\"\n\
         server.errorlog = \"{r}/run/error.log\"\n{user}\
         server.modules = (\"mod_access\", \"mod_alias\", \"mod_setenv\", \"mod_cgi\")\n\
         server.max-fds = 4096\nserver.max-connections = 1024\n\
         server.listen-backlog = 1024\n\
         {site}{tls}",
        site = shipped("lighttpd", root, opts),
        tls = if opts.tls.is_some() {
            shipped_tls("lighttpd", "edeploy-tls.conf", root, port)
        } else {
            String::new()
        },
    )
}

/// Programs of the installer that would touch the machine: a fake node
/// records their commands and answers them with success.
pub const NODE_RECORDED: &[&str] = &[
    "mount",
    "umount",
    "modprobe",
    "udhcpc",
    "ip",
    "parted",
    "mkfs.ext4",
    "mkfs.vfat",
    "mkdir",
    "chroot",
    "reboot",
    "poweroff",
    "kexec",
    "extlinux",
    "dd",
    "sync",
    "setsid",
    "rsync",
    "dropbear",
];

/// A fake node's command runner: records [`NODE_RECORDED`], answers
/// `ip -o -4 addr show` with `ip_addr` and `dmesg` with a canned line
/// (neither recorded), and reports every other program as not installed.
/// Rules added to it come before the recorded programs.
pub fn node_exec(ip_addr: &str) -> Fake {
    Fake::new(NODE_RECORDED.iter().copied())
        .on(
            When::line("ip -o -4 addr show"),
            Reply::stdout(ip_addr).unrecorded(),
        )
        .on(
            When::line("dmesg"),
            Reply::stdout("[    0.000000] Linux version 6.1.0 (canned dmesg)\n").unrecorded(),
        )
        .otherwise(Reply::not_installed())
}

/// A profile and a hardware list whose decision no search finishes in
/// reasonable time, whatever its pruning: specs asking for a clique of 16
/// vertices (`('edge', '$vI', '$vJ', '1')` for every pair) and a list of
/// the edges, both ways, of a random graph of 100 vertices where each
/// pair is joined with probability 1/2 (4,954 lines; its largest clique
/// has about 12 vertices, so there is no match). Finding a clique is
/// NP-complete: no known algorithm avoids trying a number of partial
/// cliques that grows exponentially. Returns `(specs, list)`; the list
/// has the serial `serial`.
pub fn costly_decision(serial: &str) -> (String, String) {
    const VERTICES: u64 = 100;
    const CLIQUE: usize = 16;
    let mut state: u64 = 12345;
    let mut coin = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) & 1 == 1
    };
    let mut list = format!("[('system', 'product', 'serial', '{serial}'),\n");
    for a in 0..VERTICES {
        for b in a + 1..VERTICES {
            if coin() {
                list.push_str(&format!(" ('edge', 'v{a}', 'v{b}', '1'),\n"));
                list.push_str(&format!(" ('edge', 'v{b}', 'v{a}', '1'),\n"));
            }
        }
    }
    list.push_str("]\n");
    let mut specs = String::from("[");
    for j in 1..CLIQUE {
        for i in 0..j {
            specs.push_str(&format!("('edge', '$v{i}', '$v{j}', '1'),\n "));
        }
    }
    specs.push_str("]\n");
    (specs, list)
}

/// Writes a file in the site's scratch area (not one of its served dirs).
pub fn scratch(site: &Site, name: &str, data: &[u8]) -> PathBuf {
    let dir = site.path("scratch");
    fs::create_dir_all(&dir).expect("scratch dir");
    let p = dir.join(name);
    fs::write(&p, data).expect("scratch file");
    p
}

/// A synthetic node of the boot-storm tests (`rack.specs`, `spare.specs`
/// match it): its serial and its NIC's MAC.
pub fn synth_hw(serial: &str, mac: &str) -> String {
    format!(
        "[('system', 'product', 'name', 'Synth 1000'),\n \
         ('system', 'product', 'vendor', 'Synth'),\n \
         ('system', 'product', 'serial', '{serial}'),\n \
         ('disk', 'sda', 'size', '500'),\n \
         ('network', 'eth0', 'serial', '{mac}'),\n \
         ('network', 'eth0', 'link', 'yes')]\n"
    )
}

/// The KVM fixture (booted BIOS) with MAC addresses of its own: node `i`.
pub fn kvm_node(i: usize) -> String {
    let text = fs::read_to_string(Path::new(ROOT).join("tests/fixtures/hw/kvm-test-vm-bios.hw"))
        .expect("the KVM fixture");
    let mine = text.replace("52:54:12:34:00:0", &format!("52:54:00:{i:02x}:00:0"));
    assert_ne!(mine, text);
    mine
}

/// The site's `upload.cgi` run by hand (local mode, as the installer's
/// embedded mode runs it), with the site's configuration.
pub fn local_upload_cgi(site: &Site, args: &[&str]) -> std::process::Output {
    Command::new(site.path("cgi-bin/upload.cgi"))
        .args(args)
        .env("EDEPLOY_CONF", site.path("edeploy.conf"))
        .env_remove("REQUEST_METHOD")
        .stdin(Stdio::null())
        .output()
        .expect("run upload.cgi")
}
