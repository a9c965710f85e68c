import AgentCore
import TBTOML

/// The answers of `tb-agent setup`, rendered as a commented `config.toml`.
public struct SetupConfiguration: Sendable {
    /// Where the provision secret goes: into the file (mode 0600), or a reference to a file that holds it.
    public enum SecretSource: Sendable {
        case inline(Secret)
        case file(String)
    }

    public var host: String
    public var port: Int
    public var deviceKey: String
    public var secret: SecretSource
    /// `[device] name_template`: `{id}` when the derived name was accepted, else the typed name with braces escaped.
    public var nameTemplate: String
    /// What the template gives today and where it came from, for a comment.
    public var derivedNote: String?
    public var sysroot: String
    public var board: BoardProfile?
    /// MQTT over TLS (a `[server.tls]` table, the system's CA certificates).
    public var tls: Bool

    public init(
        host: String, port: Int, deviceKey: String, secret: SecretSource, nameTemplate: String, derivedNote: String?,
        sysroot: String, board: BoardProfile?, tls: Bool = false
    ) {
        self.tls = tls
        self.host = host
        self.port = port
        self.deviceKey = deviceKey
        self.secret = secret
        self.nameTemplate = nameTemplate
        self.derivedNote = derivedNote
        self.sysroot = sysroot
        self.board = board
    }

    /// A name typed by a person, as a template that gives exactly that name.
    public static func literalTemplate(_ name: String) -> String {
        var out = ""
        for character in name {
            if character == "{" || character == "}" { out.append(character) }
            out.append(character)
        }
        return out
    }

    /// A TOML basic string holding `value`.
    public static func quoted(_ value: String) -> String { TOMLValue.basicString(value) }

    public func render() -> String {
        var lines: [String] = [
            "# tb-agent configuration, written by `tb-agent setup`. Reference: README, \"Configuration\".",
            "# Check it with `tb-agent check-config`. Relative paths are relative to this file's folder.",
        ]
        if case .inline = self.secret {
            lines.append("# It holds the provision device secret: keep it mode 0600, readable by root only.")
        }
        lines += [
            "",
            "[server]",
            self.tls
                ? "# The ThingsBoard MQTT endpoint, over TLS."
                : "# The ThingsBoard MQTT endpoint, plain MQTT: only for a server on this machine (the provision secret and\n# the token would cross a network in clear). For TLS use port 8883 and add a [server.tls] table.",
            "host = \(Self.quoted(self.host))",
            "port = \(self.port)",
        ]
        if self.tls {
            lines += [
                "",
                "[server.tls]",
                "# The server's certificate is checked against the system's CA certificates (/etc/ssl/certs); for a",
                "# private CA add ca_file = \"/etc/tb-agent/ca.pem\".",
                "verify_hostname = true",
            ]
        }
        lines += [
            "",
            "[provisioning]",
            "# From the ThingsBoard device profile (Device provisioning): the provision device key and secret.",
            "device_key = \(Self.quoted(self.deviceKey))",
        ]
        switch self.secret {
        case .inline(let secret): lines.append("device_secret = \(Self.quoted(secret.revealed))")
        case .file(let path): lines.append("device_secret_file = \(Self.quoted(path))")
        }
        lines += [
            "",
            "[device]",
            "# {id} is the board serial, else the MAC of the first wired interface, else /etc/machine-id;",
            "# `tb-agent identity --explain` shows what this board gives.",
        ]
        if let note = self.derivedNote { lines.append("# Today: \(note).") }
        lines.append("name_template = \(Self.quoted(self.nameTemplate))")
        lines.append("sysroot = \(Self.quoted(self.sysroot))")
        lines.append("state_dir = \"/var/lib/tb-agent\"")
        if let board = self.board {
            lines.append("board = \(Self.quoted(board.name))          # \(board.title)")
        }
        lines += [
            "",
            "[telemetry]",
            "interval = \"10s\"",
            "",
            "# Sensors, the button and the status LED: see board/examples/ for [[sensors]], [button] and [led].",
        ]
        if let board = self.board {
            if let led = board.statusLED { lines += ["# [led]", "# sysfs = \(Self.quoted(led))"] }
            if let button = board.buttonLine {
                let pin = board.pin(forLine: button).map { " (header pin \($0))" } ?? ""
                lines += ["# [button]", "# line = \(Self.quoted(button))\(pin.isEmpty ? "" : "      #\(pin)")"]
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

extension BoardProfiles {
    /// The profile on `searchPath` whose `models` has a prefix of `model` (a device-tree model string).
    public static func matching(model: String, searchPath: [String]) -> BoardProfile? {
        for name in self.known(searchPath: searchPath) {
            guard case .found(let profile) = self.find(name, searchPath: searchPath) else { continue }
            if profile.models.contains(where: { model.hasPrefix($0) }) { return profile }
        }
        return nil
    }
}
