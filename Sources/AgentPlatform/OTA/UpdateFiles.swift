import AgentCore
import AgentHost
import Glibc
import TBJSON

/// The files of `state_dir/ota/` that the agent and the root step (`tb-agent apply-update`) exchange
/// (`UpdateTicket`, `UpdateOutcome`), each replaced crash-safely and never followed through a link.
public struct UpdateFiles: Sendable {
    public let directory: String
    public var readyPath: String { self.directory + "/ready" }
    public var trialPath: String { self.directory + "/trial" }
    public var confirmedPath: String { self.directory + "/confirmed" }
    public var outcomePath: String { self.directory + "/outcome" }
    public var packagePath: String { self.directory + "/package.part" }
    public var metadataPath: String { self.directory + "/package.json" }

    public init(stateDirectory: String) { self.directory = stateDirectory + "/ota" }

    static func json(_ path: String) -> JSONValue? {
        guard let bytes = try? AtomicFile.read(path) else { return nil }
        return try? JSONValue.parse(bytes)
    }

    public func ready() -> UpdateTicket? { Self.json(self.readyPath).flatMap(UpdateTicket.init(json:)) }
    public func trial() -> UpdateTicket? { Self.json(self.trialPath).flatMap(UpdateTicket.init(json:)) }
    public func outcome() -> UpdateOutcome? { Self.json(self.outcomePath).flatMap(UpdateOutcome.init(json:)) }
    /// The version the confirmation names.
    public func confirmed() -> String? { Self.json(self.confirmedPath)?["version"]?.stringValue }

    public func writeReady(_ ticket: UpdateTicket) throws(AgentError) {
        try self.write(ticket.json, to: self.readyPath, what: "the update's ready ticket")
    }

    public func writeTrial(_ ticket: UpdateTicket) throws(AgentError) {
        try self.write(ticket.json, to: self.trialPath, what: "the update's trial record")
    }

    public func writeOutcome(_ outcome: UpdateOutcome) throws(AgentError) {
        try self.write(outcome.json, to: self.outcomePath, what: "the update's outcome")
    }

    public func confirm(version: String) throws(AgentError) {
        try self.write(.object([("version", .string(version))]), to: self.confirmedPath, what: "the update's confirmation")
    }

    func write(_ json: JSONValue, to path: String, what: String) throws(AgentError) {
        if mkdir(self.directory, 0o700) != 0 && errno != EEXIST {
            throw AgentError(.storageFailure, "cannot create \(self.directory) for \(what): \(AtomicFile.IOError.text(errno)); check the state directory's permissions")
        }
        do {
            try AtomicFile.write(json.serializedBytes, to: path)
        } catch let error as AtomicFile.IOError {
            throw AgentError(.storageFailure, "cannot write \(what) \(path): \(error)")
        } catch {
            throw AgentError(.storageFailure, "cannot write \(what) \(path): \(error)")
        }
    }

    /// Removes the named files (a missing one is fine) and makes that durable.
    public func remove(_ paths: [String]) {
        for path in paths { _ = unlink(path) }
        try? AtomicFile.syncDirectory(self.directory)
    }
}

/// Checks a verified package before it is handed over (`FirmwareImage`). A program: its ELF header, then
/// `--version` in a child process (10 s at most, no environment but PATH: a shutdown waits for it, within the unit's
/// TimeoutStopSec). A Debian package: its control fields (`dpkg-deb --field`), then the same checks on the
/// `usr/bin/tb-agent` it holds, taken out beside it and removed afterwards. Blocking: the runtime runs it off the loop.
public enum FirmwareInspector {
    public static func problem(
        package: OTAPackage, path: String, timeoutMilliseconds: Int = 10_000, isCancelled: () -> Bool = { false }
    ) -> String? {
        guard let header = Self.firstBytes(of: path, count: FirmwareImage.headerLength) else {
            return "cannot open the downloaded package \(path): \(AtomicFile.IOError.text(errno))"
        }
        switch FirmwareImage.format(header) {
        case .program:
            return Self.programProblem(package: package, path: path, header: header, timeoutMilliseconds: timeoutMilliseconds, isCancelled: isCancelled)
        case .debian:
            return Self.debianProblem(package: package, path: path, timeoutMilliseconds: timeoutMilliseconds, isCancelled: isCancelled)
        }
    }

    static func programProblem(
        package: OTAPackage, path: String, header: [UInt8], timeoutMilliseconds: Int, isCancelled: () -> Bool
    ) -> String? {
        if let problem = FirmwareImage.headerProblem(header, package: package) { return problem }
        // Executable by its owner only: it is run once, as the agent's user, to ask its version.
        guard chmod(path, 0o700) == 0 else {
            return "cannot make the downloaded package \(path) executable to check it: \(AtomicFile.IOError.text(errno))"
        }
        do {
            let outcome = try Subprocess.run(path, arguments: ["--version"], timeoutMilliseconds: timeoutMilliseconds, isCancelled: isCancelled)
            return FirmwareImage.versionProblem(output: outcome.output, exited: outcome.summary, succeeded: outcome.succeeded, package: package)
        } catch {
            return "\(package) could not be started to check it (\(error)); the state directory's file system may not allow running programs (noexec)"
        }
    }

    /// The first `count` bytes of a file (fewer if it is shorter), not followed through a link and never blocking on
    /// a FIFO; nil (errno set) if it cannot be opened.
    static func firstBytes(of path: String, count: Int) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: count)
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        return Array(bytes.prefix(max(0, n)))
    }

    /// The name of the agent's binary taken out of a Debian package to check it, beside the package.
    public static func extractedPath(besides path: String) -> String { HostProcess.parent(of: path) + "/package.check" }

    static func debianProblem(package: OTAPackage, path: String, timeoutMilliseconds: Int, isCancelled: () -> Bool) -> String? {
        guard let dpkgDeb = UpdateInstaller.resolve("dpkg-deb"), access(dpkgDeb, X_OK) == 0 else {
            return "\(package) is a Debian package, but dpkg-deb is not installed on this board to check it: install dpkg, or upload the tb-agent binary (usr/bin/tb-agent in the .deb) as the package"
        }
        do {
            let fields = try Subprocess.run(
                dpkgDeb, arguments: ["--field", path, "Package", "Version", "Architecture"], timeoutMilliseconds: timeoutMilliseconds,
                isCancelled: isCancelled)
            if let problem = FirmwareImage.debianProblem(fields: fields.output, exited: fields.summary, succeeded: fields.succeeded, package: package) {
                return problem
            }
            // The agent's binary alone, out of the data archive (whatever its compression: dpkg-deb knows them).
            let extracted = Self.extractedPath(besides: path)
            _ = unlink(extracted)
            defer { _ = unlink(extracted) }
            let taken = try Subprocess.run(
                "/bin/sh", arguments: ["-c", "dpkg-deb --fsys-tarfile \"$1\" | tar -xOf - \"$2\" > \"$3\"", "sh", path, FirmwareImage.debianBinaryPath, extracted],
                timeoutMilliseconds: max(timeoutMilliseconds, 120_000), isCancelled: isCancelled)
            guard taken.succeeded else {
                let said = String(decoding: taken.output.suffix(300), as: UTF8.self).split(separator: "\n").last.map { ": \($0)" } ?? ""
                return "\(package) holds no usr/bin/tb-agent that could be taken out to check it (\(taken.summary)\(said)): upload a tb-agent .deb built by scripts/package-deb.sh"
            }
            guard let header = Self.firstBytes(of: extracted, count: FirmwareImage.headerLength) else {
                return "cannot open \(extracted), the binary taken out of \(package): \(AtomicFile.IOError.text(errno))"
            }
            return Self.programProblem(
                package: package, path: extracted, header: header, timeoutMilliseconds: timeoutMilliseconds, isCancelled: isCancelled)
        } catch {
            return "\(package) could not be checked: \(error)"
        }
    }
}

/// Installs a verified software package with `[ota.software] command` (the package's path appended as the last
/// argument), as the agent's user, in a child process with no environment but PATH, bounded by `[ota.software]
/// timeout`. Blocking: the runtime runs it off the loop.
public enum SoftwareInstaller {
    public static func problem(
        package: OTAPackage, path: String, command: [String], timeout: Duration, isCancelled: () -> Bool = { false }
    ) -> String? {
        guard let name = command.first else { return "no [ota.software] command is configured" }
        guard let program = UpdateInstaller.resolve(name) else {
            return "the [ota.software] command \(name) was not found in /usr/sbin, /usr/bin, /sbin or /bin: give its absolute path"
        }
        let milliseconds = Int(timeout.components.seconds) * 1000 + Int(timeout.components.attoseconds / 1_000_000_000_000_000)
        let shown = (command + [path]).joined(separator: " ")
        do {
            let outcome = try Subprocess.run(
                program, arguments: Array(command.dropFirst()) + [path], timeoutMilliseconds: milliseconds, outputLimit: 64 << 10,
                isCancelled: isCancelled)
            if outcome.succeeded { return nil }
            let said = String(decoding: outcome.output.suffix(300), as: UTF8.self).split(separator: "\n").last.map { ": \($0)" } ?? ""
            return "\(shown) ended with \(outcome.summary)\(said); the package stays uninstalled: fix the command or the package and assign it again"
        } catch {
            return "\(shown) could not be started: \(error)"
        }
    }
}
