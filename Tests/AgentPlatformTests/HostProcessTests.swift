import AgentHost
import AgentPlatform
import Foundation
import Testing

@Suite struct HostProcessTests {
    @Test func pathsAreNormalisedAndMadeAbsolute() {
        #expect(HostProcess.normalize("/var//lib/./tb-agent/../tb") == "/var/lib/tb")
        #expect(HostProcess.normalize("a/../../b") == "../b")
        #expect(HostProcess.normalize("/..") == "/")
        #expect(HostProcess.normalize("./") == ".")
        #expect(HostProcess.parent(of: "/var/lib/tb-agent") == "/var/lib")
        #expect(HostProcess.parent(of: "/config.toml") == "/")
        #expect(HostProcess.parent(of: "config.toml") == ".")
        #expect(HostProcess.parent(of: "/var/lib/tb-agent/") == "/var/lib")
        #expect(HostProcess.absolutePath("x/../y.toml") == FileManager.default.currentDirectoryPath + "/y.toml")
        #expect(HostProcess.absolutePath("/etc/tb-agent/config.toml") == "/etc/tb-agent/config.toml")
    }

    @Test func environmentAndExistenceMatchTheSystem() {
        #expect(HostProcess.environment()["PATH"] == ProcessInfo.processInfo.environment["PATH"])
        #expect(HostProcess.exists("/"))
        #expect(!HostProcess.exists("/no/such/path/for/tb-agent"))
    }
}
