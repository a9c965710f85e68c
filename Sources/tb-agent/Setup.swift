import AgentCommandLine
import AgentConfig
import AgentCore
import AgentHost
import AgentPlatform
import TextSearch

#if canImport(Glibc)
import Glibc
#endif

struct Setup: AsyncCommand {
    static let configuration = CommandConfiguration(
        commandName: "setup",
        abstract: "Write a configuration by asking for the server and the provisioning details.",
        discussion: """
            On a terminal, asks for the server host (default thingsboard.cloud), whether to use TLS (default yes, \
            unless the host is this machine: the provision secret and the device's token must not cross a network \
            in clear), the port (default 8883 with TLS, 1883 without), the provision device key and secret (not \
            echoed) and the device name (default: the one derived from the hardware). Without a terminal, the answers come from the flags: --device-key and either \
            --device-secret-file or --device-secret-stdin are required. The file is written with mode 0600 and \
            checked before it replaces anything; an existing file is kept unless --force is given.
            """)

    static let force = Flag("force", help: "Replace an existing configuration file.")
    static let host = Option<String>("host", help: "The ThingsBoard host (default thingsboard.cloud).")
    static let port = Option<Int>("port", help: "The MQTT port (default 8883 with TLS, 1883 without).")
    static let tls = Flag(
        "tls",
        help: "MQTT over TLS, checked against the system's CA certificates (default: TLS unless the host is this machine).",
        inversion: true, default: nil)
    static let deviceKey = Option<String>("device-key", help: "The provision device key from the ThingsBoard device profile.")
    static let deviceSecretFile = Option<String>(
        "device-secret-file", help: "A file holding the provision device secret; the configuration refers to it.")
    static let deviceSecretStdin = Flag(
        "device-secret-stdin", help: "Read the provision device secret from standard input (secrets never go on the command line).")
    static let deviceName = Option<String>("device-name", help: "The device name, instead of the one derived from the hardware.")
    static let sysroot = Option<String>(
        "sysroot", help: "The system root to derive the name from, written as [device] sysroot (default /).", default: "/")

    static var arguments: [ArgumentSpec] {
        GlobalOptions.arguments + [
            Self.force.spec, Self.host.spec, Self.port.spec, Self.tls.spec, Self.deviceKey.spec,
            Self.deviceSecretFile.spec, Self.deviceSecretStdin.spec, Self.deviceName.spec, Self.sysroot.spec,
        ]
    }

    var global: GlobalOptions
    var force: Bool
    var host: String?
    var port: Int?
    var tls: Bool?
    var deviceKey: String?
    var deviceSecretFile: String?
    var deviceSecretStdin: Bool
    var deviceName: String?
    var sysroot: String

    init(_ values: ParsedValues) throws {
        self.global = try GlobalOptions(values)
        self.force = values.isSet(Self.force)
        self.host = values[Self.host]
        self.port = values[Self.port]
        self.tls = values[Self.tls]
        self.deviceKey = values[Self.deviceKey]
        self.deviceSecretFile = values[Self.deviceSecretFile]
        self.deviceSecretStdin = values.isSet(Self.deviceSecretStdin)
        self.deviceName = values[Self.deviceName]
        self.sysroot = try values.value(Self.sysroot)
    }

    static let cannotCreate: Int32 = 73  // EX_CANTCREAT

    func validate() throws {
        if self.deviceSecretFile != nil && self.deviceSecretStdin {
            throw ValidationError("pass --device-secret-file or --device-secret-stdin, not both")
        }
        if let port = self.port, !(1...65535).contains(port) {
            throw ValidationError("--port \(port) is out of range; expected 1 to 65535")
        }
    }

    func run() async throws {
        let path = self.global.config
        if !self.force && HostProcess.exists(path) {
            CommandOutput.error("tb-agent setup: \(path) already exists; pass --force to replace it")
            throw ExitCode(Self.cannotCreate)
        }
        let interactive = isatty(STDIN_FILENO) == 1 && !self.deviceSecretStdin
        let sysroot = self.sysroot.hasPrefix("/") ? self.sysroot : ConfigurationLoaderPath.absolute(self.sysroot)
        let derived: Result<DerivedIdentity, AgentError>
        do {
            derived = .success(try HardwareIdentity.derive(DeviceSettings(sysroot: sysroot)))
        } catch {
            derived = .failure(error)
        }
        var prompter = Prompter(interactive: interactive)
        var missing: [String] = []

        let host = try self.host ?? prompter.ask("ThingsBoard host", default: "thingsboard.cloud")
        // Plain MQTT only to this machine: anywhere else the provision secret and the token would travel in clear.
        let tls = try self.tls ?? prompter.askYesNo("Use TLS (MQTT over TLS, port 8883)", default: !NetworkExposure.isLoopback(host))
        let port = try self.port ?? prompter.askPort(default: tls ? 8883 : 1883)
        if !tls, let warning = NetworkExposure.plaintextWarning(ServerSettings(host: host, port: port)) {
            CommandOutput.error("warning: \(warning)")
        }
        let deviceKey: String
        if let key = self.deviceKey {
            deviceKey = key
        } else if interactive {
            deviceKey = try prompter.askRequired("Provision device key")
        } else {
            deviceKey = ""
            missing.append("--device-key KEY")
        }
        var secret: SetupConfiguration.SecretSource = .inline(Secret(""))
        if let file = self.deviceSecretFile {
            secret = .file(ConfigurationLoaderPath.absolute(file))
        } else if self.deviceSecretStdin {
            let text = Secret.fromText(String(decoding: HostProcess.readStandardInput(), as: UTF8.self))
            guard !text.isEmpty else {
                CommandOutput.error("tb-agent setup: standard input held no provision device secret")
                throw ExitCode(ExitStatus.usage)
            }
            secret = .inline(text)
        } else if interactive {
            secret = .inline(try prompter.askSecret("Provision device secret (not shown)"))
        } else {
            missing.append("--device-secret-file FILE (or --device-secret-stdin)")
        }

        var template = "{id}"
        var note: String? = nil
        if let name = self.deviceName {
            template = SetupConfiguration.literalTemplate(name)
        } else {
            switch derived {
            case .success(let identity):
                let from = identity.source.map { "from the \($0.displayName)" } ?? "from the hardware"
                note = "\"\(identity.name)\" \(from)"
                let typed = try prompter.ask("Device name", default: identity.name, hint: from)
                if typed != identity.name { template = SetupConfiguration.literalTemplate(typed) }
            case .failure(let error):
                if interactive {
                    CommandOutput.error("No device name can be derived from the hardware: \(error.message)")
                    template = SetupConfiguration.literalTemplate(try prompter.askRequired("Device name"))
                } else {
                    missing.append("--device-name NAME (no name can be derived from the hardware: \(error.message))")
                }
            }
        }
        if !missing.isEmpty {
            CommandOutput.error(
                "tb-agent setup: standard input is not a terminal, so nothing can be asked; pass "
                    + missing.joined(separator: ", "))
            throw ExitCode(ExitStatus.usage)
        }
        let search = ConfigurationLoader.boardSearchPath(configurationPath: path)
        let board = (try? derived.get())?.facts.model.flatMap { BoardProfiles.matching(model: $0, searchPath: search) }
        let answers = SetupConfiguration(
            host: host, port: port, deviceKey: deviceKey, secret: secret, nameTemplate: template, derivedNote: note,
            sysroot: sysroot, board: board, tls: tls)
        do throws(AgentError) {
            // The service runs as user tb-agent: when its group exists, it may read the file (it holds the secret,
            // so nobody else may).
            let serviceGroup = getgrnam("tb-agent").map { $0.pointee.gr_gid }
            try ConfigurationFileWriter.save(
                answers.render(), to: path, mode: serviceGroup == nil ? 0o600 : 0o640, group: serviceGroup,
                overwrite: self.force
            ) {
                (candidate: String) throws(AgentError) in
                do throws(ConfigurationFileError) {
                    _ = try ConfigurationLoader.load(path: candidate)
                } catch {
                    // Problems name the temporary file: show them under the real name.
                    let text = error.description.replacingText(candidate, with: path)
                    throw AgentError(.invalidConfiguration, "the new configuration does not check:\n\(text)")
                }
            }
        } catch {
            CommandOutput.error("tb-agent setup: \(error.message)")
            throw ExitCode(error.code == .invalidConfiguration ? ExitStatus.config : Self.cannotCreate)
        }
        let config = try? ConfigurationLoader.loadDeviceSettings(path: path)
        let name = config.flatMap { try? HardwareIdentity.derive($0).name } ?? self.deviceName ?? "?"
        print("wrote \(path) (mode 0600); device name \"\(name)\"")
    }
}

enum ConfigurationLoaderPath {
    static func absolute(_ path: String) -> String {
        HostProcess.absolutePath(path)
    }
}

/// Questions on the terminal: prompts on standard error, answers from standard input.
struct Prompter {
    let interactive: Bool

    struct InputEnded: Error, CustomStringConvertible {
        var description: String { "input ended before setup was complete" }
    }

    func prompt(_ text: String) {
        HostProcess.writeStandardError(text)
    }

    func readAnswer() throws -> String {
        guard let line = readLine(strippingNewline: true) else { throw InputEnded() }
        return String(line.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }

    /// Asks with a default shown in brackets; an empty answer takes the default. Without a terminal: the default.
    mutating func ask(_ question: String, default value: String, hint: String? = nil) throws -> String {
        guard self.interactive else { return value }
        let shown = hint.map { "\(value), \($0)" } ?? value
        self.prompt("\(question) [\(shown)]: ")
        let answer = try self.readAnswer()
        return answer.isEmpty ? value : answer
    }

    mutating func askRequired(_ question: String) throws -> String {
        while true {
            self.prompt("\(question): ")
            let answer = try self.readAnswer()
            if !answer.isEmpty { return answer }
            self.prompt("An answer is needed.\n")
        }
    }

    /// A yes or no question; an empty answer takes the default. Without a terminal: the default.
    mutating func askYesNo(_ question: String, default value: Bool) throws -> Bool {
        guard self.interactive else { return value }
        while true {
            self.prompt("\(question)? [\(value ? "Y/n" : "y/N")]: ")
            let answer = try self.readAnswer().lowercased()
            if answer.isEmpty { return value }
            if ["y", "yes"].contains(answer) { return true }
            if ["n", "no"].contains(answer) { return false }
            self.prompt("Answer yes or no.\n")
        }
    }

    mutating func askPort(default value: Int) throws -> Int {
        guard self.interactive else { return value }
        while true {
            let answer = try self.ask("MQTT port", default: String(value))
            if let port = Int(answer), (1...65535).contains(port) { return port }
            self.prompt("\"\(answer)\" is not a port number (1 to 65535).\n")
        }
    }

    /// Reads a line with the terminal's echo turned off, so the secret never shows on screen.
    mutating func askSecret(_ question: String) throws -> Secret {
        while true {
            // Echo goes off before the prompt shows, so nothing typed after the prompt is ever echoed.
            let restore = TerminalEcho.disable()
            self.prompt("\(question): ")
            let line = readLine(strippingNewline: true)
            TerminalEcho.restore(restore)
            self.prompt("\n")
            guard let line else { throw InputEnded() }
            if !line.isEmpty { return Secret(line) }
            self.prompt("An answer is needed.\n")
        }
    }
}

/// Turning the terminal's echo off and on again, also when the user presses Ctrl-C meanwhile.
enum TerminalEcho {
    // Written before the signal handlers are installed and read only by them.
    nonisolated(unsafe) static var saved = termios()

    static func disable() -> Bool {
        var settings = termios()
        guard tcgetattr(STDIN_FILENO, &settings) == 0 else { return false }
        Self.saved = settings
        signal(SIGINT, TerminalEcho.onSignal)
        signal(SIGTERM, TerminalEcho.onSignal)
        settings.c_lflag &= ~tcflag_t(ECHO)
        return tcsetattr(STDIN_FILENO, TCSANOW, &settings) == 0
    }

    static func restore(_ changed: Bool) {
        guard changed else { return }
        var settings = Self.saved
        _ = tcsetattr(STDIN_FILENO, TCSANOW, &settings)
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }

    static let onSignal: @convention(c) (Int32) -> Void = { signalNumber in
        var settings = TerminalEcho.saved
        _ = tcsetattr(STDIN_FILENO, TCSANOW, &settings)
        _exit(128 + signalNumber)
    }
}
