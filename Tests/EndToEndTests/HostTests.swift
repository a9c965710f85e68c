import AgentTestSupport
import Foundation
import TBJSON
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What a careless host cannot break (issue 10): a second agent on the same state directory (finding 6), and an
/// unusable spool directory (finding 10).
@Suite("End to end: the host")
struct HostTests {
    @Test("A second agent on the same state directory exits at once (78), names the first by its PID, and touches nothing")
    func twoAgentsOnOneStateDirectory() async throws {
        let sim = try await E2ESim.start()
        let board = try BoardCopy()
        try board.writeConfig(port: sim.mqttPort, interval: "1s", sensors: BoardCopy.sensors(["cpu_temperature"]))
        var agents: [AgentProcess] = []
        try await withProcesses({ agents }, sim) {
            agents.append(try await AgentProcess.start(board))
            let first = agents[0]
            try #require(await eventuallyAsync(.seconds(30)) { (try? await first.status())?["state"]?.stringValue == "online" },
                         "the first agent did not come online; log:\n\(first.log)")
            let socket = board.stateDirectory.appendingPathComponent("agent.sock").path
            var before = stat()
            try #require(lstat(socket, &before) == 0, "the first agent has no status socket")
            let token = try #require(board.storedToken())
            let connects = sim.deviceConnects().count

            agents.append(try await AgentProcess.start(board))
            let second = agents[1]
            let clock = ContinuousClock()
            let started = clock.now
            try #require(await eventually(.seconds(10), every: .milliseconds(20)) { !second.isRunning },
                         "the second agent is still running; its log:\n\(second.log)")
            #expect(clock.now - started < .seconds(5))
            #expect(await second.terminate() == 78)
            #expect(second.log.contains("PID \(first.child.pid)"), "\(second.log)")
            #expect(second.log.contains("tb-agent run"), "\(second.log)")
            #expect(second.log.contains(board.stateDirectory.path), "\(second.log)")

            // The first one is unharmed: its socket (the same one, not replaced), its session, its spool.
            var after = stat()
            #expect(lstat(socket, &after) == 0 && after.st_ino == before.st_ino, "the second agent removed or replaced agent.sock")
            #expect((try? await first.status())?["state"]?.stringValue == "online")
            await pause(.seconds(1))
            #expect(sim.deviceConnects().count == connects, "the second agent connected: \(sim.deviceConnects())")
            #expect(first.isRunning)
            let readingsBefore = sim.readings(of: "cpu_temperature").count
            #expect(await eventually(.seconds(10)) { sim.readings(of: "cpu_temperature").count > readingsBefore + 2 })

            // `provision --force` would store credentials under the running agent: refused the same way, the
            // server not asked.
            let requests = sim.provisionRequests().count
            let provision = try TestSupport.tbAgent(["provision", "--force", "--config", board.configURL.path])
            #expect(provision.status == 78, "\(provision.stderr)")
            #expect(provision.stderr.contains("PID \(first.child.pid)"), "\(provision.stderr)")
            #expect(sim.provisionRequests().count == requests)
            #expect(board.storedToken() == token)
        }
    }

    @Test("Two agents started together on one state directory: exactly one runs")
    func twoAgentsStartedTogether() async throws {
        let sim = try await E2ESim.start()
        let board = try BoardCopy()
        try board.writeConfig(port: sim.mqttPort, interval: "1s", sensors: BoardCopy.sensors(["cpu_temperature"]))
        var agents: [AgentProcess] = []
        try await withProcesses({ agents }, sim) {
            async let a = AgentProcess.start(board)
            async let b = AgentProcess.start(board)
            agents = try await [a, b]
            try #require(await eventually(.seconds(10)) { agents.filter(\.isRunning).count == 1 },
                         "running: \(agents.filter(\.isRunning).count); logs:\n\(agents.map(\.log).joined(separator: "\n---\n"))")
            await pause(.seconds(2))
            let running = agents.filter(\.isRunning)
            try #require(running.count == 1)
            let stopped = try #require(agents.first { !$0.isRunning })
            #expect(await stopped.terminate() == 78, "\(stopped.log)")
            #expect(await eventuallyAsync(.seconds(30)) { (try? await running[0].status())?["state"]?.stringValue == "online" })
        }
    }

    @Test("A file in place of the spool directory: the agent starts, publishes, and says why and how to fix it")
    func unusableSpoolDirectory() async throws {
        let sim = try await E2ESim.start()
        let board = try BoardCopy()
        try board.writeConfig(port: sim.mqttPort, interval: "1s", sensors: BoardCopy.sensors(["cpu_temperature"]))
        try FileManager.default.createDirectory(at: board.stateDirectory, withIntermediateDirectories: false)
        chmod(board.stateDirectory.path, 0o700)
        try Data("not a directory\n".utf8).write(to: board.spoolDirectory)
        var agents: [AgentProcess] = []
        try await withProcesses({ agents }, sim) {
            agents.append(try await AgentProcess.start(board))
            let agent = agents[0]
            try #require(await eventually(.seconds(30)) { sim.readings(of: "cpu_temperature").count >= 3 || !agent.isRunning },
                         "no telemetry; log:\n\(agent.log)")
            #expect(agent.isRunning, "the agent stopped: \(agent.log)")
            let status = try await agent.status()
            let storage = status["storage"]?.stringValue ?? ""
            #expect(storage.contains("rm \(board.spoolDirectory.path)"), "\(status.serialized)")
            #expect(agent.log.contains("kept in memory"), "\(agent.log)")
            #expect(await agent.terminate() == 0)
            #expect((try? String(contentsOf: board.spoolDirectory, encoding: .utf8)) == "not a directory\n")
        }
    }

    @Test("tb-agent run is not dumpable: its /proc files belong to root, and its own user cannot read its environment")
    func runIsNotDumpable() async throws {
        let board = try BoardCopy()
        // Nothing listens on the port: the agent keeps trying, holding the provision secret in memory.
        try board.writeConfig(port: try TestSupport.freePort(), sensors: BoardCopy.sensors(["cpu_temperature"]))
        let asRoot = geteuid() == 0
        var command = [TestSupport.binary("tb-agent").path, "run", "--config", board.configURL.path]
        if asRoot {
            // As another user, so that "owned by root" tells the kernel's non-dumpable rule apart.
            for path in try [board.directory.path] + FileManager.default.subpathsOfDirectory(atPath: board.directory.path)
                .map({ board.directory.appendingPathComponent($0).path }) {
                _ = lchown(path, 65534, 65534)
            }
            command = ["/usr/bin/setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"] + command
        }
        let argv = command
        let child = try await offPool { try ChildProcess(URL(fileURLWithPath: argv[0]), Array(argv.dropFirst())) }
        defer { _ = child.stop() }
        let pid = child.pid
        try #require(await eventually(.seconds(20)) { child.stderr.contains("starting") || !child.isRunning },
                     "the agent did not start: \(child.stderr)")
        try #require(child.isRunning, "the agent stopped: \(child.stderr)")
        var environ = stat()
        try #require(stat("/proc/\(pid)/environ", &environ) == 0)
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let uid = status.split(separator: "\n").first { $0.hasPrefix("Uid:") }?.split(separator: "\t").dropFirst().first
        if asRoot {
            #expect(uid == "65534", "\(status)")
            #expect(environ.st_uid == 0, "/proc/\(pid)/environ belongs to uid \(environ.st_uid): the agent is dumpable")
            let read = try TestSupport.run(URL(fileURLWithPath: "/usr/bin/setpriv"),
                                           ["--reuid", "65534", "--regid", "65534", "--clear-groups", "cat", "/proc/\(pid)/environ"])
            #expect(read.status != 0 && read.stdout.isEmpty, "its own user read its environment")
        } else {
            let fd = open("/proc/\(pid)/environ", O_RDONLY)
            if fd >= 0 { close(fd) }
            #expect(fd < 0, "its own user can open /proc/\(pid)/environ: the agent is dumpable")
        }
    }
}
