import AgentConfig
import AgentCore
import AgentTestSupport
import Foundation
import Testing

/// `ConfigurationLoader` on text: one test per class of problem, each asserting the position and the key path.
@Suite struct ConfigurationLoaderTests {
    static let minimal = """
        [server]
        host = "tb.example.com"

        [provisioning]
        device_key = "KEY"
        device_secret = "SECRET"

        """

    /// The problems `text` has, as parsed from `file`.
    func problems(_ text: String, file: String = "/etc/tb-agent/config.toml") -> [ConfigurationProblem] {
        do {
            _ = try ConfigurationLoader.parse(text, path: file)
            Issue.record("expected problems")
            return []
        } catch {
            return error.problems
        }
    }

    func only(_ text: String) -> ConfigurationProblem? {
        let found = self.problems(text)
        #expect(found.count == 1, "\(found)")
        return found.first
    }

    @Test func validConfigurationFillsTheModel() throws {
        let text = Self.minimal + """
            [device]
            name_template = "pi-{mac}"
            identity_sources = ["mac", "serial"]
            state_dir = "/var/lib/tb-agent"

            [telemetry]
            interval = "1m30s"

            [[sensors]]
            name = "door"
            kind = "gpio"
            line = "GPIO17"
            bias = "pull-up"
            active_low = true
            debounce = "20ms"
            report_as = "number"

            [[sensors]]
            name = "pulses"
            kind = "counter"
            chip = "pinctrl-bcm2711"
            offset = 23

            [[sensors]]
            name = "humidity"
            kind = "iio"
            device = "dht11"
            channel = "in_humidityrelative_input"
            scale = 0.001

            [button]
            line = "GPIO27"

            [led]
            line = "GPIO22"
            active_low = true
            """
        let config = try ConfigurationLoader.parse(text, path: "/etc/tb-agent/config.toml")
        #expect(config.server.host == "tb.example.com")
        #expect(config.server.port == 1883)
        #expect(config.provisioning.deviceSecret.revealed == "SECRET")
        #expect(config.device.nameTemplate == "pi-{mac}")
        #expect(config.device.identitySources == [.mac, .serial])
        #expect(config.telemetry.interval == .seconds(90))
        #expect(config.sensors.map(\.name) == ["door", "pulses", "humidity"])
        #expect(config.sensors[0].line == .name("GPIO17"))
        #expect(config.sensors[0].bias == .pullUp)
        #expect(config.sensors[0].reportAsNumber)
        #expect(config.sensors[1].line == .chipOffset(chip: "pinctrl-bcm2711", offset: 23))
        #expect(config.sensors[2].scale == 0.001)
        #expect(config.button?.line == .name("GPIO27"))
        #expect(config.button?.reprovisionHold == .seconds(5))
        #expect(config.led == LEDSettings(target: .line(.name("GPIO22")), activeLow: true))
    }

    @Test func tlsChangesTheDefaultPort() throws {
        let config = try ConfigurationLoader.parse(
            Self.minimal + "[server.tls]\nverify_hostname = false\n", path: "/etc/tb-agent/config.toml")
        #expect(config.server.port == 8883)
        #expect(config.server.tls?.verifyHostname == false)
    }

    @Test func maxBackoffCapsTheRetriesAndIsBounded() throws {
        let defaults = try ConfigurationLoader.parse(Self.minimal, path: "/etc/tb-agent/config.toml")
        #expect(defaults.server.maxBackoff == .seconds(300))
        let withCap = Self.minimal.replacingOccurrences(of: "host = \"tb.example.com\"", with: "host = \"tb.example.com\"\nmax_backoff = \"2s\"")
        #expect(try ConfigurationLoader.parse(withCap, path: "/etc/tb-agent/config.toml").server.maxBackoff == .seconds(2))
        let tooLong = Self.minimal.replacingOccurrences(of: "host = \"tb.example.com\"", with: "host = \"tb.example.com\"\nmax_backoff = \"2h\"")
        let problem = try #require(self.only(tooLong))
        #expect(problem.keyPath == "server.max_backoff")
    }

    @Test func parseErrorHasTheParsersPositionAndTheKey() throws {
        let problem = try #require(self.only("[server]\nhost = \"x\"\nport = 18 83\n"))
        #expect(problem.line == 3)
        #expect(problem.column == 11)
        #expect(problem.keyPath == "server.port")
        #expect(problem.description.hasPrefix("/etc/tb-agent/config.toml:3:11: server.port: TOML syntax error"))
    }

    @Test func unknownKeyHasASuggestion() throws {
        let problem = try #require(self.only(Self.minimal + "[telemetry]\n  intervall = \"10s\"\n"))
        #expect(problem.line == 8)
        #expect(problem.column == 3)
        #expect(problem.keyPath == "telemetry.intervall")
        #expect(problem.message.contains("did you mean \"interval\"?"))
    }

    @Test func unknownKeyInAnArrayOfTablesNamesTheIndex() throws {
        let text = Self.minimal + """
            [[sensors]]
            name = "a"
            kind = "thermal"
            [[sensors]]
            name = "b"
            kind = "thermal"
            zoen = "thermal_zone1"
            """
        let problem = try #require(self.only(text))
        #expect(problem.keyPath == "sensors[1].zoen")
        #expect((problem.line, problem.column) == (13, 1))
        #expect(problem.message.contains("did you mean \"zone\"?"))
    }

    @Test func wrongTypeNamesTheExpectedForm() throws {
        let problem = try #require(self.only(Self.minimal.replacingOccurrences(of: "host = \"tb.example.com\"", with: "host = \"tb.example.com\"\nport = \"1883\"")))
        #expect(problem.keyPath == "server.port")
        #expect((problem.line, problem.column) == (3, 1))
        #expect(problem.message == "server.port: expected a port number from 1 to 65535 (1883, or 8883 with TLS), found a string (\"1883\")")
    }

    @Test func outOfRangeNamesTheRange() throws {
        let problem = try #require(self.only(Self.minimal.replacingOccurrences(of: "host = \"tb.example.com\"", with: "host = \"tb.example.com\"\n    port = 0")))
        #expect(problem.keyPath == "server.port")
        #expect((problem.line, problem.column) == (3, 5))
        #expect(problem.message.contains("0 is out of range; expected a port number from 1 to 65535"))
    }

    @Test func missingRequiredKeyIsReportedAtItsTable() throws {
        let problem = try #require(self.only("[server]\nport = 1883\n[provisioning]\ndevice_key = \"K\"\ndevice_secret = \"S\"\n"))
        #expect(problem.keyPath == "server.host")
        #expect((problem.line, problem.column) == (1, 2))
        #expect(problem.message.contains("missing required key; expected the ThingsBoard host name"))
    }

    @Test func missingTableHasNoPosition() throws {
        let problems = self.problems("[device]\nname_template = \"{id}\"\n")
        #expect(problems.map(\.keyPath) == ["server", "provisioning"])
        #expect(problems.allSatisfy { $0.line == nil })
        #expect(problems[0].description.hasPrefix("/etc/tb-agent/config.toml: server: missing table [server]"))
    }

    @Test func badDurationSaysWhatADurationIs() throws {
        let text = Self.minimal + "[[sensors]]\nname = \"d\"\nkind = \"gpio\"\nline = \"GPIO17\"\ndebounce = \"20\"\n"
        let problem = try #require(self.only(text))
        #expect(problem.keyPath == "sensors[0].debounce")
        #expect((problem.line, problem.column) == (11, 1))
        #expect(problem.message.contains("\"20\" is not a duration; expected a duration string with a unit"))
        let bare = try #require(self.only(Self.minimal + "[telemetry]\ninterval = 10\n"))
        #expect(bare.message.contains("write \"10s\" or \"10ms\""))
    }

    @Test func everyProblemIsReportedInFileOrder() {
        let text = """
            [server]
            host = "mqtt://tb"
            port = 99999
            [provisioning]
            device_key = ""
            device_secret = "S"
            [telemetry]
            interval = "0s"
            """
        let problems = self.problems(text)
        #expect(problems.map(\.keyPath) == ["server.host", "server.port", "provisioning.device_key", "telemetry.interval"])
        #expect(problems.map { $0.line ?? 0 } == [2, 3, 5, 8])
    }

    @Test(arguments: ["s3cr3t\n", "s3cr3t\r\n", "s3cr3t"])
    func secretFileIsReadWithoutItsTrailingNewline(_ content: String) throws {
        let dir = try TestSupport.makeTemporaryDirectory("config")
        try content.write(to: dir.appendingPathComponent("secret"), atomically: true, encoding: .utf8)
        let text = "[server]\nhost = \"tb\"\n[provisioning]\ndevice_key = \"K\"\ndevice_secret_file = \"secret\"\n"
        let config = try ConfigurationLoader.parse(text, path: dir.appendingPathComponent("config.toml").path)
        #expect(config.provisioning.deviceSecret.revealed == "s3cr3t")
        #expect(config.provisioning.deviceSecretFile == dir.appendingPathComponent("secret").path)
    }

    @Test func missingSecretFileNamesTheFileAndTheFix() throws {
        let text = "[server]\nhost = \"tb\"\n[provisioning]\ndevice_key = \"K\"\ndevice_secret_file = \"/nonexistent/secret\"\n"
        let problem = try #require(self.only(text))
        #expect(problem.keyPath == "provisioning.device_secret_file")
        #expect((problem.line, problem.column) == (5, 1))
        #expect(problem.message.contains("cannot read \"/nonexistent/secret\" (no such file)"))
        #expect(problem.message.contains("or set device_secret instead"))
    }

    @Test func secretsNeverAppearInProblems() {
        let text = "[server]\nhost = \"tb\"\n[provisioning]\ndevice_key = \"K\"\ndevice_secret = \"hunter2\"\ndevice_secret_file = \"x\"\n"
        let problems = self.problems(text)
        #expect(!problems.isEmpty)
        #expect(!problems.description.contains("hunter2"))
    }

    @Test func crossFieldChecks() {
        let text = Self.minimal + """
            [gpio]
            backend = "libgpiod"
            simulated_dir = "/tmp/x"
            [[sensors]]
            name = "t"
            kind = "ds18b20"
            line = "GPIO4"
            [[sensors]]
            name = "b"
            kind = "gpio"
            chip = "gpiochip0"
            [button]
            chip = "gpiochip0"
            offset = 17
            [led]
            sysfs = "ACT"
            active_low = true
            """
        let problems = self.problems(text)
        #expect(problems.map(\.keyPath) == [
            "gpio.simulated_dir", "sensors[0].line", "sensors[1].chip", "led.active_low",
        ])
    }

    @Test func aChipNumberIsRefusedWithTheLabelToUse() {
        let text = Self.minimal + """
            [button]
            chip = "4"
            offset = 17
            """
        let problems = self.problems(text)
        #expect(problems.map(\.keyPath) == ["button.chip"])
        #expect(problems.first?.message.contains("chip numbers change between kernels") == true)
        #expect(problems.first?.message.contains("\"pinctrl-rp1\"") == true)
        // A label, a path and the kernel's name for a chip stay valid.
        for chip in ["pinctrl-rp1", "/dev/gpiochip0", "gpiochip0"] {
            let valid = Self.minimal + "[button]\nchip = \"\(chip)\"\noffset = 17\n"
            let config = try? ConfigurationLoader.parse(valid, path: "/etc/tb-agent/config.toml")
            #expect(config?.button?.line == .chipOffset(chip: chip, offset: 17), "\(chip)")
        }
    }

    @Test func credentialsTypeNeedsItsKeys() {
        let x509 = Self.minimal + "credentials_type = \"X509_CERTIFICATE\"\n"
        #expect(self.problems(x509).map(\.keyPath) == ["server.tls", "provisioning.cert_file"])
        let basic = Self.minimal + "credentials_type = \"MQTT_BASIC\"\n"
        #expect(self.problems(basic).map(\.keyPath) == ["provisioning.credentials_type"])
        let typo = Self.minimal + "credentials_type = \"mqtt_basic\"\n"
        #expect(self.problems(typo).first?.message.contains("did you mean \"MQTT_BASIC\"?") == true)
    }

    @Test func deviceSettingsAloneNeedNoServer() throws {
        let device = try ConfigurationLoader.parseDeviceSettings(
            "[device]\nname_template = \"pi-{mac}\"\n", path: "/etc/tb-agent/config.toml")
        #expect(device.nameTemplate == "pi-{mac}")
        #expect(throws: ConfigurationFileError.self) {
            try ConfigurationLoader.parseDeviceSettings("[device]\nname_template = \"{nope}\"\n", path: "c.toml")
        }
    }

    @Test func relativePathsAreRelativeToTheConfigurationFile() throws {
        let dir = try TestSupport.makeTemporaryDirectory("config")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("root"), withIntermediateDirectories: true)
        let config = try ConfigurationLoader.parse(
            Self.minimal + "[device]\nsysroot = \"root\"\n[gpio]\nbackend = \"simulated\"\nsimulated_dir = \"gpio\"\n",
            path: dir.appendingPathComponent("config.toml").path)
        #expect(config.device.sysroot == dir.appendingPathComponent("root").path)
        #expect(config.gpio.backend == .simulated(directory: dir.appendingPathComponent("gpio").path))
    }

    @Test func boardsAreFoundBesideTheConfigurationAndUnknownOnesAreListed() throws {
        let dir = try TestSupport.makeTemporaryDirectory("boards")
        let boards = dir.appendingPathComponent("board")
        try FileManager.default.createDirectory(at: boards.appendingPathComponent("examples"), withIntermediateDirectories: true)
        try "title = \"T\"\ngpio_chip = \"chip\"\nbutton_line = \"GPIO3\"\n[header]\n1 = \"3V3\"\n2 = \"GPIO3\"\n"
            .write(to: boards.appendingPathComponent("tiny.toml"), atomically: true, encoding: .utf8)
        let path = boards.appendingPathComponent("examples/config.toml").path
        let config = try ConfigurationLoader.parse(Self.minimal + "[device]\nboard = \"tiny\"\n", path: path)
        #expect(config.boardProfile?.gpioChip == "chip")
        #expect(config.boardProfile?.pin(forLine: "GPIO3") == 2)
        do {
            _ = try ConfigurationLoader.parse(Self.minimal + "[device]\nboard = \"tiyn\"\n", path: path)
            Issue.record("expected an unknown board")
        } catch {
            #expect(error.problems.count == 1)
            #expect(error.problems.first?.keyPath == "device.board")
            #expect(error.problems.first?.message.contains("did you mean \"tiny\"?") == true)
            #expect(error.problems.first?.message.contains("known boards: tiny;") == true)
        }
    }
}

/// The scanner that positions keys.
@Suite struct KeyPositionTests {
    func position(_ text: String, _ key: String, file: String = "f.toml") -> (Int?, Int?) {
        // Put an unknown key at `key` and read where the loader says it is.
        do {
            _ = try ConfigurationLoader.parseDeviceSettings(text, path: file)
        } catch {
            if let p = error.problems.first(where: { $0.keyPath == key }) { return (p.line, p.column) }
        }
        return (nil, nil)
    }

    @Test func dottedQuotedAndInlineKeys() {
        #expect(self.position("device.\"odd key\" = 1\n", "device.\"odd key\"") == (1, 8))
        #expect(self.position("[device]\nx.y = 1\n", "device.x") == (2, 1))
        #expect(self.position("[device]\n# a comment [x]\ns = \"\"\"\n[z]\n\"\"\"\nq = 1\n", "device.s") == (3, 1))
        #expect(self.position("[device]\ns = \"\"\"\n[z]\n\"\"\"\nq = 1\n", "device.q") == (5, 1))
        #expect(self.position("button = { line = \"GPIO27\", holdd = \"5s\" }\n", "button.holdd") == (1, 29))
        #expect(self.position("[device]\nidentity_sources = [\n  \"serial\",\n  \"nope\",\n]\n", "device.identity_sources[1]") == (4, 3))
    }

    @Test func nestedArrayTables() {
        let text = """
            [[sensors]]
            name = "a"
            kind = "thermal"

            [[sensors]]
            name = "b"
            kind = "thermal"
            [sensors.extra]
            x = 1
            """
        #expect(self.position(text, "sensors[1].extra") == (8, 10))
    }
}
