#!/usr/bin/env python3
"""Checks the deployment files by hand, since no Docker engine or systemd runs here.

    deploy_test.py SOURCE_DIR BUILD_DIR PART

PART is one of:
  files    docker/compose.yaml, docker/Dockerfile and .dockerignore agree: ports on 127.0.0.1
           and not 1883, healthy dependencies, secrets as files, every COPY source present and
           in the build context, the build stage's configure step works on that context, and
           the gateway image installs the package of every library rtm-gateway links.
  broker   the broker image's entry point, config, ACL and health probe, run for real with the
           image's paths mapped into a temp dir: the probe passes, and fails on a bad password.
  gateway  docker/gateway.yaml with its secrets as files: `rtm-gateway --check-config` passes,
           and the gateway started with it against that broker reports ready on /readyz with
           the image's HEALTHCHECK command; packaging/config.yaml passes --check-config too.
  systemd  packaging/rtm-gateway.service: the expected settings, `systemd-analyze verify` in a
           scratch root, and the exposure score of `systemd-analyze security`.
"""

import os
import pwd
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

SOURCE = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else None
BUILD = Path(sys.argv[2]).resolve() if len(sys.argv) > 2 else None
failures = []


def check(condition, what, detail=""):
    if condition:
        print(f"ok    {what}")
    else:
        print(f"FAIL  {what}")
        if detail:
            print("      " + detail.strip().replace("\n", "\n      "))
        failures.append(what)
    return condition


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ Dockerfile and .dockerignore

def dockerfile_stages(text):
    """{stage name: [(instruction, arguments)]}, continuation lines joined."""
    stages = {}
    current = None
    logical = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not logical and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        instruction, _, args = logical.strip().partition(" ")
        logical = ""
        instruction = instruction.upper()
        if instruction == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", args.strip(), re.IGNORECASE)
            current = m.group(2) or m.group(1)
            stages[current] = [("FROM", m.group(1))]
        else:
            stages[current].append((instruction, args.strip()))
    return stages


def dockerignore_patterns():
    patterns = []
    for line in (SOURCE / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            patterns.append(line.rstrip("/"))
    return patterns


def pattern_regex(pattern):
    """Docker's .dockerignore matching: `*` and `?` stay inside a level, `**` spans levels."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + "$")


def ignored(rel_path, patterns):
    """Whether docker leaves a path out of the context: it or a parent directory matches
    (the last matching pattern wins; `!` takes a path back in)."""
    parts = Path(rel_path).parts
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = pattern_regex(pattern[1:] if negate else pattern)
        if any(regex.match(p) for p in prefixes):
            result = not negate
    return result


def context_copy(into):
    """The build context docker would send: the checkout without what .dockerignore excludes."""
    patterns = dockerignore_patterns()
    for dirpath, dirnames, filenames in os.walk(SOURCE):
        rel_dir = Path(dirpath).relative_to(SOURCE)
        dirnames[:] = [d for d in dirnames if not ignored(rel_dir / d, patterns)]
        for name in filenames:
            rel = rel_dir / name
            if ignored(rel, patterns):
                continue
            target = into / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(SOURCE / rel, target, follow_symlinks=False)


def copy_sources(args):
    words = shlex.split(args)
    words = [w for w in words if not w.startswith("--")]
    return words[:-1], words[-1]


def part_files():
    compose = yaml.safe_load((SOURCE / "docker/compose.yaml").read_text())
    dockerfile = SOURCE / "docker/Dockerfile"
    stages = dockerfile_stages(dockerfile.read_text())
    patterns = dockerignore_patterns()
    services = compose.get("services", {})
    check(set(services) >= {"mosquitto", "gateway"}, "compose has services mosquitto and gateway")

    for name, service in services.items():
        build = service.get("build", {})
        check((SOURCE / "docker" / build.get("context", ".") / build.get("dockerfile", "")).resolve() == dockerfile,
              f"{name}: builds docker/Dockerfile with the checkout as context")
        check(build.get("target") in stages, f"{name}: its target {build.get('target')} is a Dockerfile stage")
        for port in service.get("ports", []):
            host = str(port).split(":")
            check(len(host) == 3 and host[0] == "127.0.0.1", f"{name}: port {port} is bound to 127.0.0.1")
            check(host[-2] != "1883", f"{name}: port {port} is not the host's 1883")
        for key in (service.get("environment") or {}):
            check(not re.search(r"SECRET|PASSWORD|TOKEN", str(key), re.I),
                  f"{name}: no secret in the environment ({key})")
        for dep, spec in (service.get("depends_on") or {}).items():
            check(isinstance(spec, dict) and spec.get("condition") == "service_healthy",
                  f"{name}: waits for {dep} to be healthy")
            target = services[dep]["build"]["target"]
            check(any(i == "HEALTHCHECK" for i, _ in stages[target]),
                  f"{dep}: its image (stage {target}) has a HEALTHCHECK")
    check(services["gateway"].get("depends_on", {}).get("mosquitto", {}).get("condition") == "service_healthy",
          "gateway depends on a healthy mosquitto")
    for name in ("gateway", "mosquitto"):
        target = services[name]["build"]["target"]
        check(any(i == "HEALTHCHECK" for i, _ in stages[target]), f"stage {target} has a HEALTHCHECK")
    gateway_health = [a for i, a in stages["gateway"] if i == "HEALTHCHECK"]
    check(bool(gateway_health) and "/readyz" in gateway_health[0], "the gateway's HEALTHCHECK asks /readyz")
    broker_health = [a for i, a in stages["broker"] if i == "HEALTHCHECK"]
    check(bool(broker_health) and "rtm-broker-healthcheck" in broker_health[0],
          "the broker's HEALTHCHECK runs the mosquitto_sub probe")

    for name, secret in (compose.get("secrets") or {}).items():
        path = (SOURCE / "docker" / secret.get("file", "")).resolve()
        rel = path.relative_to(SOURCE)
        check("file" in secret, f"secret {name} is a file")
        check(ignored(rel, patterns), f"secret {name} ({rel}) stays out of the build context")
        git = subprocess.run(["git", "-C", str(SOURCE), "check-ignore", "-q", "--no-index", str(rel)])
        check(git.returncode == 0, f"secret {name} ({rel}) is ignored by git")
    for name in ("gateway", "mosquitto"):
        check(set(services[name].get("secrets", [])) == {"rtm_token_secret", "rtm_gateway_password"},
              f"{name} gets both secrets")
    for name, config in (compose.get("configs") or {}).items():
        check((SOURCE / "docker" / config["file"]).is_file(), f"config {name} ({config['file']}) exists")

    # Every COPY source is in the context; every COPY --from=build source is built here.
    for stage, instructions in stages.items():
        for instruction, args in instructions:
            if instruction not in ("COPY", "ADD"):
                continue
            sources, _ = copy_sources(args)
            from_stage = re.search(r"--from=(\S+)", args)
            for src in sources:
                if from_stage:
                    rel = re.sub(r"^/src/build/", "", src)
                    check(src.startswith("/src/build/") and (BUILD / rel).exists(),
                          f"{stage}: COPY --from={from_stage.group(1)} {src} is an output of the build")
                elif src == ".":
                    check(True, f"{stage}: COPY . (the whole context)")
                else:
                    check((SOURCE / src).exists(), f"{stage}: COPY {src} exists")
                    check(not ignored(src, patterns), f"{stage}: COPY {src} is not excluded by .dockerignore")
    check(ignored("build/CMakeCache.txt", patterns) and ignored(".git/HEAD", patterns)
          and ignored(".run/env", patterns), ".dockerignore keeps build*/, .git and .run out")

    # The build stage's RUN steps: install-deps.sh is the README's script; the configure step
    # runs for real on a copy of the context; the targets it builds exist.
    runs = [a for i, a in stages["build"] if i == "RUN"]
    check(any("./scripts/install-deps.sh" in r for r in runs), "the build stage installs with scripts/install-deps.sh")
    build_run = next((r for r in runs if "cmake -S" in r), "")
    steps = [s.strip() for s in build_run.split("&&")]
    configure = next((s for s in steps if s.startswith("cmake -S")), None)
    build_step = next((s for s in steps if s.startswith("cmake --build")), "")
    with tempfile.TemporaryDirectory(prefix="rtm-docker-context-") as tmp:
        ctx = Path(tmp)
        context_copy(ctx)
        check(not (ctx / "build").exists(), "the context has no build directory")
        result = subprocess.run(shlex.split(configure), cwd=ctx, capture_output=True, text=True)
        check(result.returncode == 0, f"the build stage's `{configure}` works on the context", result.stderr[-2000:])
        targets = shlex.split(build_step)[shlex.split(build_step).index("--target") + 1:] if "--target" in build_step else []
        listed = subprocess.run(["cmake", "--build", "build", "--target", "help"], cwd=ctx, capture_output=True, text=True).stdout
        for target in targets:
            check(re.search(rf"^{re.escape(target)}:", listed, re.M) is not None,
                  f"the build stage's target {target} exists")
        for step in steps[2:]:
            for word in shlex.split(step)[1:]:
                if word.startswith("build/"):
                    check((BUILD / word[len('build/'):]).exists(), f"`{step}`: {word} is an output of the build")

    # The slim gateway image installs the package of every library rtm-gateway needs.
    installs = " ".join(a for i, a in stages["gateway"] if i == "RUN")
    packages = set(re.findall(r"\b(lib[a-z0-9.+-]+|ca-certificates|curl)\b", installs))
    base = {"libc6", "libstdc++6", "libgcc-s1"}  # in debian:bookworm-slim
    gateway = BUILD / "gateway/rtm-gateway"
    needed = re.findall(r"NEEDED.*\[(.+)\]", subprocess.run(["readelf", "-d", str(gateway)], capture_output=True, text=True).stdout)
    ldd = subprocess.run(["ldd", str(gateway)], capture_output=True, text=True).stdout
    resolved = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M))
    resolved.update({os.path.basename(p): p for p in re.findall(r"^\s*(/\S+) \(0x", ldd, re.M)})
    for lib in needed:
        if re.match(r"lib(a|ub|l|t)san\.", lib):
            print(f"ok    {lib}: the sanitizer build's runtime (the image's build has no sanitizers)")
            continue
        path = resolved.get(lib)
        owner = subprocess.run(["dpkg", "-S", os.path.realpath(path)], capture_output=True, text=True).stdout if path else ""
        if not owner:  # merged /usr: dpkg may know the /lib path only
            owner = subprocess.run(["dpkg", "-S", re.sub(r"^/usr", "", os.path.realpath(path or ""))], capture_output=True, text=True).stdout
        package = owner.split(":")[0].strip() if owner else "?"
        check(package in packages | base, f"rtm-gateway needs {lib} from {package}: the gateway image installs it")
    check("curl" in packages, "the gateway image has curl for its HEALTHCHECK")


# ------------------------------------------------------------------ the broker image, by hand

class Broker:
    """The broker image's entry point with the image's paths mapped into a temp dir."""

    def __init__(self, tmp, token_secret, password):
        self.tmp = tmp
        self.port = free_port()
        self.ws_port = free_port()
        os.chmod(tmp, 0o755)  # the broker drops to user mosquitto when started as root
        self.secrets = tmp / "secrets"
        self.secrets.mkdir(mode=0o755)
        (self.secrets / "rtm_token_secret").write_text(token_secret + "\n")
        (self.secrets / "rtm_gateway_password").write_text(password + "\n")
        for f in self.secrets.iterdir():
            f.chmod(0o644)
        self.state = tmp / "state"
        self.state.mkdir(mode=0o700)
        self.as_mosquitto = os.geteuid() == 0
        if self.as_mosquitto:  # the image runs its entry point as USER mosquitto
            user = pwd.getpwnam("mosquitto")
            os.chown(self.state, user.pw_uid, user.pw_gid)
        image = tmp / "image"
        image.mkdir(mode=0o755)
        plugin = image / "rtm_mosquitto_auth.so"
        shutil.copy(BUILD / "mosquitto-auth/rtm_mosquitto_auth.so", plugin)
        acl = image / "acl"
        shutil.copy(SOURCE / "docker/mosquitto/acl", acl)
        for f in (plugin, acl):
            f.chmod(0o644)
        # Copies, as in the image: the checkout may sit where user mosquitto cannot read.
        self.entrypoint = image / "rtm-broker-entrypoint"
        shutil.copy(SOURCE / "docker/mosquitto/broker-entrypoint.sh", self.entrypoint)
        self.probe = image / "rtm-broker-healthcheck"
        shutil.copy(SOURCE / "docker/mosquitto/healthcheck.sh", self.probe)
        for f in (self.entrypoint, self.probe):
            f.chmod(0o755)
        # Image path -> path here, each one a COPY destination of the broker stage.
        self.mapping = {
            "/usr/local/lib/mosquitto/rtm_mosquitto_auth.so": str(plugin),
            "/etc/mosquitto/rtm/acl": str(acl),
            "/run/secrets/": str(self.secrets) + "/",
            "/var/lib/rtm-broker/": str(self.state) + "/",
            "listener 1883 0.0.0.0": f"listener {self.port} 127.0.0.1",
            "listener 9001 0.0.0.0": f"listener {self.ws_port} 127.0.0.1",
        }
        conf = (SOURCE / "docker/mosquitto/mosquitto.secure.conf").read_text()
        for image_path, here in self.mapping.items():
            check(image_path in conf, f"mosquitto.secure.conf names {image_path}")
            conf = conf.replace(image_path, here)
        self.conf = image / "mosquitto.conf"
        self.conf.write_text(conf)
        self.conf.chmod(0o644)
        self.env = dict(os.environ, RTM_SECRETS_DIR=str(self.secrets), RTM_BROKER_STATE_DIR=str(self.state),
                        RTM_BROKER_CONFIG=str(self.conf), RTM_BROKER_PORT=str(self.port))
        self.log = open(tmp / "broker.log", "wb")
        self.proc = subprocess.Popen(self.user_prefix() + [str(self.entrypoint)],
                                     env=self.env, stdout=self.log, stderr=subprocess.STDOUT)

    def user_prefix(self):
        if self.as_mosquitto:
            return ["setpriv", "--reuid=mosquitto", "--regid=mosquitto", "--clear-groups"]
        return []

    def healthcheck(self, env=None):
        return subprocess.run(self.user_prefix() + [str(self.probe)],
                              env=env or self.env, capture_output=True, text=True, timeout=30)

    def wait_healthy(self, deadline_s=20):
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self.healthcheck().returncode == 0:
                return True
        return False

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def log_text(self):
        return (self.tmp / "broker.log").read_text(errors="replace")


def websocket_connack(port, username, password, client_id, timeout_s=5):
    """The CONNACK return code of an MQTT 3.1.1 CONNECT sent over a WebSocket (RFC 6455, the
    `mqtt` subprotocol), as a browser's MQTT client sends it; None when there is no answer."""
    def utf8(text):
        raw = text.encode()
        return len(raw).to_bytes(2, "big") + raw
    flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    body = utf8("MQTT") + bytes([4, flags]) + (30).to_bytes(2, "big") + utf8(client_id)
    body += (utf8(username) if username is not None else b"") + (utf8(password) if password is not None else b"")
    connect = bytes([0x10, len(body)]) + body  # remaining length < 128 here
    mask = secrets.token_bytes(4)
    frame = bytes([0x82, 0x80 | len(connect)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(connect))
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        key = secrets.token_hex(8)
        sock.sendall((f"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}==\r\nSec-WebSocket-Version: 13\r\n"
                      "Sec-WebSocket-Protocol: mqtt\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                return None
            data += chunk
        head, _, data = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            return None
        sock.sendall(frame)
        try:
            while len(data) < 6:  # server frame header (2) + CONNACK (4)
                chunk = sock.recv(4096)
                if not chunk:
                    return None
                data += chunk
        except OSError:
            return None
        if data[0] & 0x0F != 0x2 or data[2] != 0x20:
            return None
        return data[5]


def part_broker():
    with tempfile.TemporaryDirectory(prefix="rtm-broker-image-") as tmp:
        token_secret, password = secrets.token_hex(32), secrets.token_hex(16)
        broker = Broker(Path(tmp), token_secret, password)
        try:
            if not check(broker.wait_healthy(), "the broker's entry point starts Mosquitto and its health probe passes",
                         broker.log_text()[-2000:]):
                return
            bad = broker.tmp / "bad-secrets"
            bad.mkdir(mode=0o755)
            (bad / "rtm_gateway_password").write_text("not-the-password\n")
            (bad / "rtm_gateway_password").chmod(0o644)
            result = broker.healthcheck(dict(broker.env, RTM_SECRETS_DIR=str(bad)))
            check(result.returncode != 0, "the health probe fails with a wrong password")
            anonymous = subprocess.run(["mosquitto_sub", "-p", str(broker.port), "-t", "rtm/#", "-C", "1", "-W", "3"],
                                       capture_output=True, text=True)
            check(anonymous.returncode not in (0, 27), "the broker refuses anonymous clients")
            check(websocket_connack(broker.ws_port, None, None, "anonymous-web") == 5,
                  "the WebSockets listener refuses anonymous clients as well (CONNACK 5)")
            check(websocket_connack(broker.ws_port, "rtm-gateway", "not-the-password", "rtm-gateway-ws") == 5,
                  "the WebSockets listener refuses a wrong password")
            check(websocket_connack(broker.ws_port, "rtm-gateway", password, "rtm-gateway-ws") == 0,
                  "the WebSockets listener takes the logins of the password file (MQTT over WebSockets)")
            passwd = (broker.state / "passwd").read_text() if (broker.state / "passwd").exists() else ""
            check(password not in passwd and passwd.startswith("rtm-gateway:$"),
                  "the password file holds a hash of the gateway's password")
        finally:
            broker.stop()
        missing = subprocess.run([str(SOURCE / "docker/mosquitto/broker-entrypoint.sh")],
                                 env=dict(os.environ, RTM_SECRETS_DIR=str(Path(tmp) / "none")),
                                 capture_output=True, text=True)
        check(missing.returncode != 0 and "rtm_token_secret" in missing.stderr,
              "the entry point refuses to start without its secrets, and says which")


# ------------------------------------------------------------------ docker/gateway.yaml

def part_gateway():
    gateway = BUILD / "gateway/rtm-gateway"
    with tempfile.TemporaryDirectory(prefix="rtm-gateway-image-") as tmp:
        tmp = Path(tmp)
        token_secret, password = secrets.token_hex(32), secrets.token_hex(16)
        broker = Broker(tmp, token_secret, password)
        try:
            if not check(broker.wait_healthy(), "the broker is up", broker.log_text()[-2000:]):
                return
            ops_port = free_port()
            text = (SOURCE / "docker/gateway.yaml").read_text()
            check("demo-secret" not in text and "allow_demo_secret" not in text,
                  "docker/gateway.yaml does not use the public demo secret")
            # The image's state volume becomes a folder of this run: nothing is left behind
            # for the next run (or another version of the gateway) to read.
            for image_path, here in {"/run/secrets/": str(broker.secrets) + "/",
                                     "tcp://mosquitto:1883": f"tcp://127.0.0.1:{broker.port}",
                                     "0.0.0.0:8089": f"127.0.0.1:{ops_port}",
                                     "/var/lib/rtm-gateway/": str(tmp) + "/"}.items():
                check(image_path in text, f"docker/gateway.yaml names {image_path}")
                text = text.replace(image_path, here)
            config = tmp / "gateway.yaml"
            config.write_text(text)
            checked = subprocess.run([str(gateway), "--check-config", "--config", str(config)],
                                     capture_output=True, text=True)
            check(checked.returncode == 0, "docker/gateway.yaml passes rtm-gateway --check-config",
                  checked.stdout + checked.stderr)
            # packaging/config.yaml, with the unit's credential as a file here.
            credentials = tmp / "credentials"
            credentials.mkdir()
            (credentials / "token_secret").write_text(token_secret + "\n")
            text = (SOURCE / "packaging/config.yaml").read_text()
            credential_dir = "/run/credentials/rtm-gateway.service/"
            check(credential_dir + "token_secret" in text, "packaging/config.yaml reads the unit's token_secret credential")
            (tmp / "systemd.yaml").write_text(text.replace(credential_dir, str(credentials) + "/"))
            checked = subprocess.run([str(gateway), "--check-config", "--config", str(tmp / "systemd.yaml")],
                                     capture_output=True, text=True)
            check(checked.returncode == 0, "packaging/config.yaml passes rtm-gateway --check-config",
                  checked.stdout + checked.stderr)
            stages = dockerfile_stages((SOURCE / "docker/Dockerfile").read_text())
            health = next(a for i, a in stages["gateway"] if i == "HEALTHCHECK")
            probe = shlex.split(re.search(r"CMD\s+(\[.*\])", health).group(1).replace('", "', '" "').strip("[]"))
            probe = [w.replace("127.0.0.1:8089", f"127.0.0.1:{ops_port}") for w in probe]
            log = open(tmp / "gateway.log", "wb")
            proc = subprocess.Popen([str(gateway), "--config", str(config)], stdout=log, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + 20
                healthy = False
                while time.monotonic() < deadline and proc.poll() is None:
                    if subprocess.run(probe, capture_output=True).returncode == 0:
                        healthy = True
                        break
                    time.sleep(0.1)
                check(healthy, f"the gateway image's HEALTHCHECK ({' '.join(probe)}) passes against the broker",
                      (tmp / "gateway.log").read_text(errors="replace")[-2000:])
            finally:
                proc.terminate()
                proc.wait(timeout=10)
                log.close()
        finally:
            broker.stop()


# ------------------------------------------------------------------ systemd

def part_systemd():
    unit_path = SOURCE / "packaging/rtm-gateway.service"
    unit = unit_path.read_text()
    settings = {}
    for line in unit.splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    expected = {
        "User": "rtm",
        "Restart": "on-failure",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ExecStart": "/usr/local/bin/rtm-gateway --config /etc/rtm-gateway/config.yaml",
    }
    for key, value in expected.items():
        check(value in settings.get(key, []), f"the unit sets {key}={value}")
    check(any(v.startswith("token_secret:") for v in settings.get("LoadCredential", [])),
          "the unit hands the token secret over as a credential")
    sysusers = (SOURCE / "packaging/rtm-gateway.sysusers").read_text()
    check(re.search(r"^u rtm ", sysusers, re.M) is not None, "packaging/rtm-gateway.sysusers creates user rtm")

    analyze = shutil.which("systemd-analyze")
    if not check(analyze is not None, "systemd-analyze is installed (package systemd)"):
        return
    with tempfile.TemporaryDirectory(prefix="rtm-systemd-root-") as root:
        root = Path(root)
        # A scratch root with the programs the unit runs and the system's own units.
        (root / "usr/local/bin").mkdir(parents=True)
        shutil.copy(BUILD / "gateway/rtm-gateway", root / "usr/local/bin/rtm-gateway")
        (root / "bin").mkdir()
        shutil.copy("/bin/kill", root / "bin/kill")
        shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=False,
                        ignore_dangling_symlinks=True)
        (root / "etc/systemd/system").mkdir(parents=True)
        shutil.copy(unit_path, root / "etc/systemd/system/rtm-gateway.service")
        verify = subprocess.run([analyze, "verify", f"--root={root}", "rtm-gateway.service"],
                                capture_output=True, text=True)
        check(verify.returncode == 0 and "rtm-gateway" not in verify.stderr,
              "systemd-analyze verify accepts the unit", verify.stdout + verify.stderr)
        security = subprocess.run([analyze, "security", "--offline=yes", f"--root={root}", "--no-pager",
                                   "rtm-gateway.service"], capture_output=True, text=True)
        m = re.search(r"Overall exposure level for rtm-gateway.service: ([0-9.]+)", security.stdout)
        check(m is not None and float(m.group(1)) <= 2.0,
              f"systemd-analyze security rates the unit's exposure at most 2.0 (got {m.group(1) if m else '?'})")


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in ("files", "broker", "gateway", "systemd"):
        print(__doc__)
        return 2
    {"files": part_files, "broker": part_broker, "gateway": part_gateway, "systemd": part_systemd}[sys.argv[3]]()
    if failures:
        print(f"{len(failures)} checks failed")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
