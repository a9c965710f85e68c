import AgentCore
import AgentPlatform
import AgentTestSupport
import Foundation
import TBChecksum
import Testing

/// The agent's checks of a verified firmware package before it is handed to the root step, on real files: Debian
/// packages built here with dpkg-deb, holding a small program that answers `--version` as tb-agent does.
/// A C compiler whose programs run as this process does (not so under qemu-user, where the compiler is the host's):
/// the checks need a program of this machine.
enum NativeCompiler {
    static let candidates = ["/opt/swift/usr/bin/clang", "/usr/bin/clang", "/usr/bin/cc", "/usr/bin/gcc"]

    static let path: String? = {
        guard let compiler = Self.candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }),
              let directory = try? TestSupport.makeTemporaryDirectory("cc-probe") else { return nil }
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = directory.appendingPathComponent("probe.c")
        let output = directory.appendingPathComponent("probe")
        guard (try? "int main(void) { return 0; }\n".write(to: source, atomically: true, encoding: .utf8)) != nil,
              let result = try? TestSupport.run(URL(fileURLWithPath: compiler), ["-o", output.path, source.path]), result.status == 0,
              let bytes = try? [UInt8](Data(contentsOf: output)), bytes.count > 20,
              UInt16(bytes[18]) | UInt16(bytes[19]) << 8 == FirmwareImage.hostMachine else { return nil }
        return compiler
    }()
}

@Suite(
    "Firmware package checks: programs and .debs", .serialized,
    .enabled(if: NativeCompiler.path != nil, "no C compiler here makes programs for this machine (qemu-user runs the host's)"))
struct FirmwareInspectorTests {
    let directory: URL

    init() throws {
        self.directory = try TestSupport.makeTemporaryDirectory("firmware-check")
    }

    /// A program for this machine that prints `version` and a libgpiod line for `--version`.
    func program(says version: String) throws -> URL {
        let source = self.directory.appendingPathComponent("agent-\(version).c")
        try """
        #include <stdio.h>
        #include <string.h>
        int main(int argc, char **argv) {
            if (argc > 1 && strcmp(argv[1], "--version") == 0) { printf("\(version)\\nlibgpiod test\\n"); return 0; }
            return 70;
        }
        """.write(to: source, atomically: true, encoding: .utf8)
        let output = self.directory.appendingPathComponent("agent-\(version)")
        let compiler = try #require(NativeCompiler.path, "no C compiler")
        let result = try TestSupport.run(URL(fileURLWithPath: compiler), ["-O1", "-o", output.path, source.path])
        try #require(result.status == 0, "cc: \(result.stderr)")
        return output
    }

    /// A .deb built by dpkg-deb: `binary` (if any) as usr/bin/tb-agent, the control fields given.
    func deb(_ name: String, package: String = "tb-agent", version: String, architecture: String = FirmwareImage.hostDebianArchitecture,
             binary: URL?, compression: String = "xz") throws -> URL {
        let tree = self.directory.appendingPathComponent("tree-\(name)")
        try FileManager.default.createDirectory(at: tree.appendingPathComponent("DEBIAN"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: tree.appendingPathComponent("usr/bin"), withIntermediateDirectories: true)
        if let binary { try FileManager.default.copyItem(at: binary, to: tree.appendingPathComponent("usr/bin/tb-agent")) }
        try """
        Package: \(package)
        Version: \(version)
        Architecture: \(architecture)
        Maintainer: tests <tests@example.org>
        Description: a test package

        """.write(to: tree.appendingPathComponent("DEBIAN/control"), atomically: true, encoding: .utf8)
        let out = self.directory.appendingPathComponent("\(name).deb")
        let result = try TestSupport.run(URL(fileURLWithPath: "/usr/bin/dpkg-deb"), ["--root-owner-group", "-Z\(compression)", "--build", tree.path, out.path])
        try #require(result.status == 0, "dpkg-deb: \(result.stderr)")
        return out
    }

    func problem(_ file: URL, version: String = "2.0") throws -> String? {
        let bytes = [UInt8](try Data(contentsOf: file))
        let package = OTAPackage(title: "tb-agent", version: version, size: bytes.count, algorithm: .sha256, checksum: ChecksumAlgorithm.sha256.hex(of: bytes))
        // The agent checks the part it downloaded, in its ota folder.
        let part = self.directory.appendingPathComponent("package.part")
        try? FileManager.default.removeItem(at: part)
        try FileManager.default.copyItem(at: file, to: part)
        defer { #expect(!FileManager.default.fileExists(atPath: self.directory.appendingPathComponent("package.check").path), "the binary taken out is left") }
        return FirmwareInspector.problem(package: package, path: part.path)
    }

    @Test("a tb-agent .deb for this board whose binary runs and says the announced version passes, compressed or not")
    func goodDebian() throws {
        defer { try? FileManager.default.removeItem(at: self.directory) }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/dpkg-deb") else { Issue.record("dpkg-deb is missing"); return }
        let agent = try self.program(says: "2.0")
        #expect(try self.problem(self.deb("xz", version: "2.0+deb13", binary: agent)) == nil)
        #expect(try self.problem(self.deb("none", version: "2.0", binary: agent, compression: "none")) == nil)
        #expect(try self.problem(agent) == nil, "the program itself passes as well")
    }

    @Test("a .deb is refused before anything is replaced, naming what to fix: another package, another architecture, another version, a binary that says another version, no binary, a damaged archive")
    func refusedDebians() throws {
        defer { try? FileManager.default.removeItem(at: self.directory) }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/dpkg-deb") else { Issue.record("dpkg-deb is missing"); return }
        let agent = try self.program(says: "2.0")
        let other = try self.problem(self.deb("other", package: "weather-app", version: "2.0", binary: agent)) ?? ""
        #expect(other.contains("is the Debian package weather-app, not tb-agent"), "\(other)")
        let foreign = FirmwareImage.hostDebianArchitecture == "arm64" ? "amd64" : "arm64"
        let arch = try self.problem(self.deb("arch", version: "2.0", architecture: foreign, binary: agent)) ?? ""
        #expect(arch.contains("is a .deb for \(foreign), but this board is \(FirmwareImage.hostDebianArchitecture)"), "\(arch)")
        let labelled = try self.problem(self.deb("labelled", version: "2.1", binary: agent)) ?? ""
        #expect(labelled.contains("holds tb-agent 2.1, but its version in ThingsBoard is 2.0"), "\(labelled)")
        let lying = try self.problem(self.deb("lying", version: "2.0", binary: self.program(says: "1.9"))) ?? ""
        #expect(lying.contains("says it is tb-agent 1.9, not 2.0"), "\(lying)")
        let empty = try self.problem(self.deb("empty", version: "2.0", binary: nil)) ?? ""
        #expect(empty.contains("holds no usr/bin/tb-agent that could be taken out"), "\(empty)")
        let whole = [UInt8](try Data(contentsOf: self.deb("damaged", version: "2.0", binary: agent)))
        let damaged = self.directory.appendingPathComponent("cut.deb")
        try Data(whole.prefix(100)).write(to: damaged)
        let cut = try self.problem(damaged) ?? ""
        #expect(cut.contains("is not a readable Debian package (dpkg-deb ended with"), "\(cut)")
    }
}

/// The real dpkg adapter, read-only on this machine's own dpkg database: what is installed, and a package rebuilt
/// from its installed files (base-files: essential, so on every Debian machine, with conffiles and a postinst).
@Suite("dpkg: the installed state and a package rebuilt from it")
struct DebianPackagerTests {
    static var hasDpkg: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/dpkg-query") }

    @Test("dpkg's status record as a control file: without Status, Conffiles and Config-Version; conffiles with the shipped MD5, obsolete ones left out")
    func statusRecord() {
        let status = Array("""
            Package: tb-agent
            Status: install ok installed
            Version: 0.1.0+deb13
            Conffiles:
             /etc/tb-agent/config.toml 0123456789abcdef0123456789abcdef
             /etc/tb-agent/old.toml fedcba9876543210fedcba9876543210 obsolete
            Config-Version: 0.1.0
            Description: ThingsBoard device agent
             tb-agent connects sensors.
             .
             More text.

            """.utf8)
        #expect(String(decoding: DebianPackager.controlFile(fromStatus: status), as: UTF8.self) == """
            Package: tb-agent
            Version: 0.1.0+deb13
            Description: ThingsBoard device agent
             tb-agent connects sensors.
             .
             More text.

            """)
        let conffiles = DebianPackager.conffiles(fromStatus: status)
        #expect(conffiles.map(\.path) == ["/etc/tb-agent/config.toml"] && conffiles.map(\.md5) == ["0123456789abcdef0123456789abcdef"])
    }

    @Test("the installed version of a package; one dpkg does not know is an error naming the fix", .enabled(if: Self.hasDpkg))
    func installedVersion() throws {
        let expected = try TestSupport.run(URL(fileURLWithPath: "/usr/bin/dpkg-query"), ["-W", "-f", "${Version}", "base-files"]).stdout
        #expect(try DebianPackager().installedVersion("base-files") == expected)
        #expect(throws: AgentError.self) { try DebianPackager().installedVersion("tb-agent-no-such-package") }
        do {
            _ = try DebianPackager().installedVersion("tb-agent-no-such-package")
        } catch {
            #expect(error.message.contains("dpkg does not know tb-agent-no-such-package") && error.message.contains("not installed from a .deb"), "\(error.message)")
        }
    }

    @Test(
        "rebuilt: the same name, version and architecture, every installed file, the maintainer scripts and conffiles, md5sums of the files as they are, no database fields",
        .enabled(if: Self.hasDpkg), arguments: ["base-files", "bash"])
    func repack(_ name: String) throws {
        let directory = try TestSupport.makeTemporaryDirectory("repack")
        defer { try? FileManager.default.removeItem(at: directory) }
        let deb = directory.appendingPathComponent("\(name).deb").path
        try DebianPackager().repack(name, to: deb, workDirectory: directory.appendingPathComponent("work").path)
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("work").path), "the work folder is left")
        let dpkgDeb = URL(fileURLWithPath: "/usr/bin/dpkg-deb")
        let query = URL(fileURLWithPath: "/usr/bin/dpkg-query")
        let fields = try TestSupport.run(dpkgDeb, ["--field", deb, "Package", "Version", "Architecture"]).stdout
        let installed = try TestSupport.run(query, ["-W", "-f", "Package: ${Package}\nVersion: ${Version}\nArchitecture: ${Architecture}\n", name]).stdout
        #expect(fields == installed)
        let control = try TestSupport.run(dpkgDeb, ["--field", deb]).stdout
        #expect(!control.contains("Status:") && !control.contains("Conffiles:"), "\(control)")
        let info = try TestSupport.run(dpkgDeb, ["--info", deb]).stdout
        #expect(info.contains(" postinst") && info.contains(" conffiles"), "\(info)")
        // The conffiles: dpkg's, those still on the system.
        let expected = try TestSupport.run(query, ["-W", "-f", "${Conffiles}\n", name]).stdout.split(separator: "\n")
            .map { $0.split(separator: " ") }.filter { $0.count == 2 }.map { String($0[0]) }
            .filter { FileManager.default.fileExists(atPath: $0) }
        let conffiles = try TestSupport.run(dpkgDeb, ["--info", deb, "conffiles"]).stdout.split(separator: "\n").map(String.init)
        #expect(!conffiles.isEmpty && conffiles == expected, "\(conffiles) vs \(expected)")
        // md5sums is made from the files as they are now, conffiles left out (dpkg keeps theirs apart).
        let sums = try TestSupport.run(dpkgDeb, ["--info", deb, "md5sums"]).stdout.split(separator: "\n")
        #expect(!sums.isEmpty)
        for line in sums {
            let parts = line.split(separator: " ", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { Issue.record("md5sums line \(line)"); continue }
            let bytes = [UInt8]((try? Data(contentsOf: URL(fileURLWithPath: "/" + parts[1]))) ?? Data())
            #expect(ChecksumAlgorithm.md5.hex(of: bytes) == parts[0], "\(parts[1])")
            #expect(!conffiles.contains("/" + parts[1]), "a conffile in md5sums: \(parts[1])")
        }
        // "drwxr-xr-x root/root 0 2024-01-01 00:00 ./etc/" (a link: "lrwxrwxrwx … ./path -> target")
        let entries = try TestSupport.run(dpkgDeb, ["--contents", deb]).stdout.split(separator: "\n").compactMap { line -> (String, Character)? in
            let columns = line.split(separator: " ")
            guard columns.count > 5, let kind = columns[0].first else { return nil }
            let path = columns[5].dropFirst()
            return (path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : String(path), kind)
        }
        let packed = Dictionary(entries, uniquingKeysWith: { first, _ in first })
        let files = try TestSupport.run(query, ["--listfiles", name]).stdout.split(separator: "\n").map(String.init)
            .filter { $0.hasPrefix("/") && $0 != "/." && FileManager.default.fileExists(atPath: $0) }
        let missing = files.filter { packed[$0] == nil }
        #expect(missing.isEmpty, "not in the rebuilt package: \(missing.prefix(5))")
        #expect(files.count > 10)
        // A folder that is a link on this system (/bin → usr/bin on a merged /usr) is a folder in the package.
        for (path, kind) in packed where kind == "l" {
            #expect(!packed.keys.contains { $0.hasPrefix(path + "/") }, "\(path) is packed as a link but holds entries")
        }
    }
}

@Suite struct InterruptedCheckTests {
    @Test("a binary taken out of a .deb by a check the agent did not finish is removed at the next start")
    func leftoverRemovedAtStart() throws {
        let state = try TestSupport.makeTemporaryDirectory("ota-leftover")
        defer { try? FileManager.default.removeItem(at: state) }
        let ota = state.appendingPathComponent("ota")
        try FileManager.default.createDirectory(at: ota, withIntermediateDirectories: true)
        let leftover = ota.appendingPathComponent("package.check")
        try Data("a binary".utf8).write(to: leftover)
        _ = OTAPartialFile(stateDirectory: state.path).restore()
        #expect(!FileManager.default.fileExists(atPath: leftover.path))
    }
}
