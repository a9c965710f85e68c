import AgentCore

#if canImport(Glibc)
import Glibc
#endif

/// What `check-config` and `doctor` warn about in a valid configuration, because it gives secrets away: plain MQTT
/// to a host off this machine, and a file holding a secret (the configuration with an inline secret, the provision
/// secret file, the client key) that other users may read or change.
public enum ConfigurationAudit {
    /// One sentence per problem, each naming the file or the setting and the fix; empty when there is none.
    public static func warnings(_ config: AgentConfiguration, file: String) -> [String] {
        var out: [String] = []
        if let plaintext = NetworkExposure.plaintextWarning(config.server) { out.append(plaintext) }
        let provisioning = config.provisioning
        var inline: [String] = []
        if provisioning.deviceSecretFile == nil && !provisioning.deviceSecret.isEmpty { inline.append("the provision device secret") }
        if provisioning.token.map({ !$0.isEmpty }) ?? false { inline.append("a device token") }
        if provisioning.password.map({ !$0.isEmpty }) ?? false { inline.append("a device password") }
        if let claiming = config.claiming, claiming.secretFile == nil { inline.append("the claiming secret") }
        if !inline.isEmpty, let problem = Self.exposure(of: file, holding: inline.joined(separator: " and ")) {
            out.append(problem)
        }
        var secretFiles: [(String, String)] = []
        if let secretFile = provisioning.deviceSecretFile { secretFiles.append((secretFile, "the provision device secret")) }
        if let file = config.claiming?.secretFile { secretFiles.append((file, "the claiming secret")) }
        if let key = config.server.tls?.keyFile { secretFiles.append((key, "the client's private key ([server.tls] key_file)")) }
        for (path, what) in secretFiles {
            if let problem = Self.exposure(of: path, holding: what) { out.append(problem) }
        }
        return out
    }

    /// Why other users may read or change `path`, which holds `what`; nil when only its owner (and root, or the
    /// service's group tb-agent, or the owner's own group) may.
    public static func exposure(of path: String, holding what: String) -> String? {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }  // the loader reports what it cannot read
        let mode = String(status.st_mode & 0o7777, radix: 8)
        let fix = "`chmod 600 \(path)` (or 640 with group tb-agent, the service's group: `chgrp tb-agent \(path)`)"
        if status.st_mode & 0o006 != 0 {
            let how = status.st_mode & 0o004 != 0 ? "readable" : "writable"
            return "\(path) holds \(what) and is \(how) by every user (mode \(mode)): \(fix)"
        }
        if status.st_mode & 0o060 != 0 && !Self.isTrustedGroup(status.st_gid, owner: status.st_uid) {
            let how = status.st_mode & 0o040 != 0 ? "readable" : "writable"
            return "\(path) holds \(what) and is \(how) by the group \(Self.groupName(status.st_gid)) (mode \(mode)): \(fix)"
        }
        return nil
    }

    /// root's group, the service's group (tb-agent), or the owner's own group (named as the owner).
    static func isTrustedGroup(_ gid: gid_t, owner: uid_t) -> Bool {
        if gid == 0 { return true }
        let name = Self.groupName(gid)
        return name == "tb-agent" || name == StateOwnership.userName(owner)
    }

    static func groupName(_ gid: gid_t) -> String { StateOwnership.groupName(gid) }
}
