import AgentCommandLine
import AgentCore
import AgentPlatform
import TBJSON

struct Status: AsyncCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show what the running agent is doing, and the stored identity and credentials (secrets masked).",
        discussion: """
            Asks the running agent over its UNIX socket ([device] state_dir/agent.sock) for what the getStatus RPC \
            returns, then reads [device] state_dir/credentials.json. Exit statuses: 0 provisioned for the \
            configured server, 3 not provisioned (or only for another server), 74 the store cannot be read, \
            78 configuration.
            """)

    static let json = Flag("json", help: "Print the running agent's status as one JSON document only.")

    static var arguments: [ArgumentSpec] { GlobalOptions.arguments + [Self.json.spec] }

    var global: GlobalOptions
    var json: Bool

    init(_ values: ParsedValues) throws {
        self.global = try GlobalOptions(values)
        self.json = values.isSet(Self.json)
    }

    func run() async throws {
        let config = try LinkCommand.loadConfiguration(self.global)
        let running = StatusSocketServer.query(path: Run.statusSocketPath(config))
        if self.json {
            print((running ?? ["state": "not running"]).serialized)
            return
        }
        let storage = StateDirectory.problem(config.device.stateDir)
        if let running {
            print("agent:       running, \(running["state"]?.stringValue ?? "?") (LED: \(running["led"]?.stringValue ?? "?"))")
            if let problem = running["problem"]?.stringValue { print("problem:     \(problem)") }
            if let error = running["lastError"]?.stringValue { print("last error:  \(error)") }
            if let storage = running["storage"]?.stringValue ?? storage { print("storage:     \(storage)") }
            print("spool:       \(running["spoolDepth"]?.int64Value ?? 0) readings waiting, \(running["dropped"]?.int64Value ?? 0) dropped")
            print("uptime:      \(running["uptimeSeconds"]?.int64Value ?? 0) s, \(running["reconnects"]?.int64Value ?? 0) reconnects")
            if let ota = running["ota"] { print("firmware:    \(Self.firmwareLine(ota))") }
            if let software = running["software"] { print("software:    \(Self.firmwareLine(software))") }
        } else {
            // A read-only state directory also stops a running agent from creating its socket there.
            print("agent:       not running (no answer on \(Run.statusSocketPath(config)))\(storage == nil ? "" : "; an agent running now could not create its status socket there: see its log")")
            if let storage { print("storage:     \(storage)") }
        }
        let store = CredentialStore(directory: config.device.stateDir)
        let endpoint = ServerEndpoint(config.server)
        let lookup = try LinkCommand.run { () throws(AgentError) in try store.load(for: endpoint) }
        LinkCommand.warn(lookup.warnings)
        switch lookup {
        case .found(let stored, let source, _):
            print("device:      \(stored.deviceName)")
            print("server:      \(stored.server)")
            print("credentials: \(stored.credentials)")
            print("issued:      \(stored.issuedAt)")
            print("stored in:   \(source == .current ? store.currentPath : store.previousPath + " (the current file is damaged)")")
        case .none(let reason, _):
            print("not provisioned: \(reason)")
            throw ExitCode(LinkCommand.notProvisioned)
        }
    }
}

extension Status {
    /// The status document's `ota` section in one line: what runs, and the download's state.
    static func firmwareLine(_ ota: JSONValue) -> String {
        var current = ota["current"]?.stringValue ?? "?"
        if current.allSatisfy({ $0 == " " }) { current = "none installed" }
        let package = ota["package"]?.stringValue ?? "?"
        switch ota["state"]?.stringValue {
        case "downloading":
            let bytes = ota["bytes"]?.int64Value ?? 0, size = ota["size"]?.int64Value ?? 0
            return "\(current); downloading \(package): \(ota["progress"]?.int64Value ?? 0) % (\(bytes) of \(size) bytes)"
        case "verified": return "\(current); \(package) downloaded and verified, being checked (software: installed)"
        case "updating": return "\(current); \(package) handed to the root step (tb-agent apply-update) to install"
        case "failed": return "\(current); update \(package) FAILED: \(ota["error"]?.stringValue ?? "?")"
        default: return current
        }
    }
}

struct Reset: AsyncCommand {
    static let configuration = CommandConfiguration(
        commandName: "reset",
        abstract: "Forget the stored credentials (kept as the previous generation for recovery).",
        discussion: """
            The next `tb-agent provision` asks the server again. ThingsBoard answers FAILURE if a device with this \
            name exists already: delete it on the server first, or use pre-provisioned devices. To undo a reset, \
            rename credentials.previous.json back to credentials.json in [device] state_dir.
            """)

    static let yes = Flag("yes", help: "Confirm: forget the credentials.")

    static var arguments: [ArgumentSpec] { GlobalOptions.arguments + [Self.yes.spec] }

    var global: GlobalOptions
    var yes: Bool

    init(_ values: ParsedValues) throws {
        self.global = try GlobalOptions(values)
        self.yes = values.isSet(Self.yes)
    }

    func run() async throws {
        guard self.yes else {
            CommandOutput.error(
                "tb-agent reset forgets the stored credentials; the server will not hand them out again. Run `tb-agent reset --yes` to confirm.")
            throw ExitCode(ExitStatus.usage)
        }
        let config = try LinkCommand.loadConfiguration(self.global)
        let store = CredentialStore(directory: config.device.stateDir)
        let before = try LinkCommand.run { () throws(AgentError) in try store.load() }
        let forgotten = try LinkCommand.run { () throws(AgentError) in try store.forget() }
        guard forgotten else {
            print("nothing to forget: no credentials are stored in \(store.directory)")
            return
        }
        if let stored = before.credentials {
            print("forgot the credentials of \(stored); kept as \(store.previousPath) for recovery")
        } else {
            print("removed the damaged \(store.currentPath); \(store.previousPath) is kept")
        }
    }
}
