import AgentBoard
import AgentCommandLine
import AgentConfig
import AgentCore
import AgentGPIO
import AgentHost
import AgentPlatform
import AgentService
import TBJSON
import TextSearch

#if canImport(Glibc)
import Glibc
#endif

/// `tb-agent doctor`: what a technician runs on a board that misbehaves. One line per check, with a verdict and,
/// when something is wrong, the fix.
struct Doctor: AsyncCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check everything the agent needs, one line each with a verdict and the fix.",
        discussion: """
            Checks the configuration, the hardware identity, the state directory (who owns it), the spool, how \
            secrets travel and who may read the files holding them, the stored credentials, the \
            GPIO library (libgpiod and its API, v1 or v2), each configured GPIO line, each sensor, the status LED, \
            the server's host name and port, and the clock. \
            Exit status 0 when nothing failed (warnings allowed), 1 otherwise.
            """)

    static var arguments: [ArgumentSpec] { GlobalOptions.arguments }

    var global: GlobalOptions

    init(_ values: ParsedValues) throws {
        self.global = try GlobalOptions(values)
    }

    enum Verdict: String { case ok = "ok  ", warn = "WARN", fail = "FAIL" }

    final class Report: @unchecked Sendable {
        var failed = false
        func line(_ verdict: Verdict, _ what: String, _ detail: String) {
            if verdict == .fail { self.failed = true }
            print("\(verdict.rawValue)  \(what): \(detail)")
            fflush(nil)
        }
    }

    func run() async throws {
        let report = Report()
        // 1. The configuration.
        let config: AgentConfiguration
        do {
            config = BoardSetup.resolvingPaths(try ConfigurationLoader.load(path: self.global.config), configurationFile: self.global.config)
            report.line(.ok, "configuration", "\(self.global.config) is valid")
        } catch {
            report.line(.fail, "configuration", "\(self.global.config) has problems; fix each line below (`tb-agent check-config` lists them too)")
            for problem in error.problems { print("        \(problem)") }
            throw ExitCode(1)
        }

        // 2. The identity.
        var deviceName = "?"
        do {
            let identity = try HardwareIdentity.derive(config.device)
            deviceName = identity.name
            report.line(.ok, "identity", "\(identity.name) (from \(identity.source?.rawValue ?? "the template"))")
        } catch {
            report.line(.fail, "identity", "\(error.message) (`tb-agent identity --explain` shows every source tried)")
        }

        // The certificate chain (method = "x509-chain"): order, key, validity, and the CN against the name.
        if let chain = config.provisioning.x509Chain {
            switch ChainProvisioning.check(chain, deviceName: deviceName == "?" ? nil : deviceName) {
            case .success(let checked): report.line(.ok, "x509 chain", ChainProvisioning.describe(checked, chain))
            case .failure(let error): report.line(.fail, "x509 chain", error.message)
            }
        }

        // 3. The state directory and the credentials.
        let stateDir = config.device.stateDir
        let probe = stateDir + "/.doctor-\(getpid())"
        let parent = HostProcess.parent(of: stateDir)
        let fd = open(probe, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        if fd < 0 && errno == ENOENT && access(parent, W_OK) == 0 {
            // Not created yet: the agent (or systemd's StateDirectory=) creates it 0700 on its first start. The doctor
            // does not, since run as root it would leave a directory the service user cannot write.
            report.line(.ok, "state directory", "\(stateDir) does not exist yet; it is created on the agent's first start")
        } else if fd >= 0 {
            let written = write(fd, "x", 1)
            let synced = fsync(fd)
            close(fd)
            unlink(probe)
            if written == 1 && synced == 0 {
                report.line(.ok, "state directory", "\(stateDir) is writable")
            } else {
                report.line(.fail, "state directory", "\(stateDir) does not take writes (\(String(cString: strerror(errno)))): free space on its file system")
            }
        } else {
            let code = errno
            let fix: String
            switch code {
            case ENOENT: fix = "it does not exist: create it (`install -d -m 0700 -o tb-agent \(stateDir)`) or let systemd's StateDirectory= do it"
            case EACCES, EPERM: fix = "permission denied: the service user must own it (`chown -R tb-agent: \(stateDir)`)"
            case EROFS: fix = "the file system is read-only: remount it read-write"
            case ENOSPC: fix = "the file system is full: free space on it"
            default: fix = String(cString: strerror(code))
            }
            report.line(.fail, "state directory", "\(stateDir): \(fix)")
        }
        var stateStatus = stat()
        if stat(stateDir, &stateStatus) == 0 && stateStatus.st_mode & S_IFMT == S_IFDIR {
            // Who the agent runs as: whoever runs the doctor, or, run as root, the directory's owner (the service's
            // user), since root may check a state directory for another user.
            let agentUser = geteuid() == 0 && stateStatus.st_uid != 0 ? stateStatus.st_uid : geteuid()
            if let problem = StateOwnership.problem(stateStatus, stateDir, user: agentUser)
                ?? StateOwnership.ancestorProblem(stateDir, user: agentUser)
            {
                report.line(.fail, "state directory", problem)
            }
            let spoolDir = stateDir + "/spool"
            if let problem = Spool.problem(directory: spoolDir, user: agentUser) {
                report.line(.fail, "spool", "\(problem); until then the agent keeps readings in memory only (lost when it stops)")
            } else {
                report.line(.ok, "spool", "\(spoolDir) can hold readings while the server is unreachable")
            }
        }
        let audit = ConfigurationAudit.warnings(config, file: self.global.config)
        for warning in audit { report.line(.warn, "secrets", warning) }
        if audit.isEmpty {
            report.line(.ok, "secrets", "sent over TLS (or to this machine), and no file holding one is open to other users")
        }
        let store = CredentialStore(directory: stateDir)
        do {
            let lookup = try store.load(for: ServerEndpoint(config.server))
            switch lookup {
            case .found(let stored, let source, let warnings):
                let verdict: Verdict = source == .current && warnings.isEmpty ? .ok : .warn
                let note = warnings.isEmpty ? "" : "; " + warnings.joined(separator: "; ")
                report.line(verdict, "credentials", "\(stored.credentials.type.rawValue) for \(stored.deviceName), issued \(stored.issuedAt)\(note)")
                if stored.deviceName != deviceName && deviceName != "?" {
                    report.line(.warn, "credentials", "stored for \(stored.deviceName) but the hardware now gives \(deviceName): `tb-agent provision --force` provisions the new name")
                }
            case .none(let reason, _):
                report.line(.warn, "credentials", "\(reason); the agent provisions on its next start")
            }
        } catch {
            report.line(.fail, "credentials", error.message)
        }

        // 4. GPIO lines, 5. sensors, 6. the LED.
        switch config.gpio.backend {
        case .libgpiod:
            report.line(.ok, "GPIO library", LibgpiodBackend.summary)
        case .simulated(let directory):
            report.line(.ok, "GPIO library", "the simulated board in \(directory) (this binary is built for \(LibgpiodBackend.summary))")
        }
        let running = StatusSocketServer.query(path: Run.statusSocketPath(config)) != nil
        let backend = GPIOBackends.make(config.gpio)
        var lines: [(String, LineAddress, InputRequest)] = []
        for sensor in config.sensors where sensor.kind == .gpio || sensor.kind == .counter {
            if let line = sensor.line {
                lines.append(("sensor \(sensor.name)", line, InputRequest(bias: sensor.bias, activeLow: sensor.activeLow, consumer: "tb-agent doctor")))
            }
        }
        if let button = config.button {
            lines.append(("button", button.line, InputRequest(bias: button.bias, activeLow: button.activeLow, consumer: "tb-agent doctor")))
        }
        for (what, address, request) in lines {
            do {
                let input = try backend.input(address, request)
                let level = try input.read()
                report.line(.ok, "\(what) line", "\(address) is free and reads \(level)")
            } catch {
                if running && error.message.includes("tb-agent") {
                    report.line(.ok, "\(what) line", "\(address) is held by the running agent")
                } else {
                    report.line(.fail, "\(what) line", error.message)
                }
            }
        }
        if !config.sensors.isEmpty {
            let sensors = BoardSensors.make(config.sensors, environment: BoardSetup.sensorEnvironment(config, gpio: GPIOBackends.make(config.gpio)))
            for sensor in sensors {
                let kind = sensor.settings.kind
                if running && (kind == .gpio || kind == .counter) { continue }  // their lines were checked above
                let result = sensor.read()
                if let value = result.value, result.status == .ok {
                    report.line(.ok, "sensor \(result.name)", "\(value)")
                } else {
                    report.line(.fail, "sensor \(result.name)", result.summary)
                }
            }
        }
        if let led = config.led {
            do {
                let environment = BoardSetup.sensorEnvironment(config, gpio: GPIOBackends.make(config.gpio))
                let output = try BoardSetup.led(led, files: environment.files, gpio: backend)
                output.release()
                report.line(.ok, "status LED", "\(output.name) can be driven")
            } catch {
                if running && error.message.includes("tb-agent") {
                    report.line(.ok, "status LED", "held by the running agent")
                } else {
                    report.line(.fail, "status LED", error.message)
                }
            }
        }

        // 7. The server.
        let host = config.server.host
        let port = config.server.port
        switch Self.resolve(host, port: port) {
        case .failure(let error):
            report.line(.fail, "server", "\(host) does not resolve (\(error.message)): check [server] host and the board's DNS (/etc/resolv.conf)")
        case .success(let addresses):
            if let reached = Self.connectAny(addresses, timeout: 3) {
                report.line(.ok, "server", "\(host):\(port) answers (\(reached))")
            } else {
                report.line(.fail, "server", "\(host) resolves but port \(port) does not answer within 3 s: check [server] port, that the server runs, and firewalls")
            }
        }

        // 8. The clock.
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        let now = Int64(spec.tv_sec) * 1000
        if now < AgentBuild.timestampMilliseconds {
            report.line(.fail, "clock", "reads earlier than this agent was built: the board has no real-time clock and has not synchronised; enable NTP (`timedatectl set-ntp true`) and check the network. Readings are held until the clock is set")
        } else {
            // systemd-timesyncd marks a synchronised clock with this file; the kernel's flag is not readable here
            // and means little in containers anyway.
            if access("/run/systemd/timesync/synchronized", F_OK) == 0 {
                report.line(.ok, "clock", "synchronised (systemd-timesyncd)")
            } else {
                report.line(.warn, "clock", "plausible (later than this agent's build), but synchronisation cannot be confirmed: enable NTP (`timedatectl set-ntp true`) so timestamps do not drift")
            }
        }
        if running { report.line(.ok, "agent", "running (tb-agent status shows what it is doing)") } else {
            report.line(.warn, "agent", "not running: `systemctl status tb-agent` and `journalctl -u tb-agent` say why")
        }
        if report.failed { throw ExitCode(1) }
    }

    struct ResolveError: Error { let message: String }

    static func resolve(_ host: String, port: Int) -> Result<[(sockaddr_storage, socklen_t)], ResolveError> {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>? = nil
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else { return .failure(ResolveError(message: String(cString: gai_strerror(rc)))) }
        defer { freeaddrinfo(list) }
        var out: [(sockaddr_storage, socklen_t)] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let entry = cursor?.pointee {
            var storage = sockaddr_storage()
            if let address = entry.ai_addr {
                withUnsafeMutableBytes(of: &storage) { raw in
                    raw.copyMemory(from: UnsafeRawBufferPointer(start: address, count: Int(entry.ai_addrlen)))
                }
                out.append((storage, entry.ai_addrlen))
            }
            cursor = entry.ai_next
        }
        return .success(out)
    }

    /// Connects to the first address that answers within `timeout` seconds; returns it as text.
    static func connectAny(_ addresses: [(sockaddr_storage, socklen_t)], timeout: Int32) -> String? {
        for (var storage, length) in addresses {
            let fd = socket(Int32(storage.ss_family), Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            let rc = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) } }
            if rc != 0 && errno != EINPROGRESS { continue }
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&pfd, 1, timeout * 1000) == 1 else { continue }
            var error: Int32 = 0
            var size = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size)
            guard error == 0 else { continue }
            var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            _ = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getnameinfo($0, length, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) }
            }
            return String(decoding: host.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        return nil
    }
}
