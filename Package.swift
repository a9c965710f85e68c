// swift-tools-version:6.1
import Foundation
import PackageDescription

/// The libgpiod API to build AgentGPIO for: 1 (libgpiod 1.x: Debian 12, Raspberry Pi OS bookworm) or 2 (libgpiod
/// 2.x: Debian 13, Raspberry Pi OS trixie). In order: `TB_GPIOD_API=1|2`; the version `pkg-config --modversion
/// libgpiod` reports (with the PKG_CONFIG_PATH and PKG_CONFIG_SYSROOT_DIR given, as for a cross build); the
/// gpiod.h found under $PKG_CONFIG_SYSROOT_DIR/usr/include (v2 declares gpiod_api_version); else 2, today's
/// Raspberry Pi OS. SwiftPM's manifest cache is keyed on the environment, so changing any of these variables
/// re-decides; a libgpiod-dev replaced under an unchanged environment is caught by the header check in
/// Sources/CGPIOD/shim.h (the build then says to run `swift package purge-cache`).
func libgpiodAPI() -> Int {
    let environment = ProcessInfo.processInfo.environment
    if let forced = environment["TB_GPIOD_API"], let api = Int(forced), api == 1 || api == 2 { return api }
    let pkgConfig = Process()
    pkgConfig.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    pkgConfig.arguments = ["pkg-config", "--modversion", "libgpiod"]
    let output = Pipe()
    pkgConfig.standardOutput = output
    pkgConfig.standardError = FileHandle.nullDevice
    if (try? pkgConfig.run()) != nil {
        let data = output.fileHandleForReading.readDataToEndOfFile()
        pkgConfig.waitUntilExit()
        let version = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if pkgConfig.terminationStatus == 0, let major = Int(version.prefix { $0 != "." }) {
            return major >= 2 ? 2 : 1
        }
    }
    let sysroot = environment["PKG_CONFIG_SYSROOT_DIR"] ?? ""
    if let header = try? String(contentsOfFile: sysroot + "/usr/include/gpiod.h", encoding: .utf8) {
        return header.contains("gpiod_api_version") ? 2 : 1
    }
    return 2
}
let gpiodAPI = libgpiodAPI()

// The folder layout tells the architecture:
//   AgentCore       pure rules and models (no C, no I/O): identity, configuration model, provisioning protocol
//   TBJSON          a small ordered JSON value, parser and writer shared by the agent and tb-sim
//   TBChecksum      ThingsBoard's seven OTA checksums in pure Swift, shared by the agent and tb-sim
//   TBTOML          a TOML 1.0 reader whose values and errors carry line and column, shared by the agent and tb-sim
//   AgentConfig     TOML (TBTOML) -> AgentConfiguration, with positioned, key-path error messages
//   AgentHost       POSIX files, paths, environment and standard streams without Foundation (Glibc only)
//   TextSearch      substring search for the agent's modules, built without _StringProcessing (see the end)
//   AgentCommandLine  tb-agent's declarative command-line parser and help (stdlib and Glibc only, no Foundation)
//   AgentPlatform   the Linux file system: system-root reader, crash-safe state files, credential store
//   AgentMQTT       the only module importing CMosquitto (libmosquitto)
//   AgentGPIO       the only module importing CGPIOD (libgpiod v1 or v2, see libgpiodAPI())
//   AgentSimulated  fakes that are real modules: simulated GPIO bank, in-memory broker
//   TBSimulator     the ThingsBoard device-API simulator (SwiftNIO), used by tb-sim and the tests
//   tb-agent, tb-sim  thin executables
let package = Package(
    name: "tb-agent",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tb-agent", targets: ["tb-agent"]),
        .executable(name: "tb-sim", targets: ["tb-sim"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        .systemLibrary(name: "CMosquitto", pkgConfig: "libmosquitto", providers: [.apt(["libmosquitto-dev"])]),
        .systemLibrary(name: "CGPIOD", pkgConfig: "libgpiod", providers: [.apt(["libgpiod-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        // prctl(2) for AgentPlatform's ProcessHardening (Swift cannot call a variadic C function).
        .systemLibrary(name: "CProcessControl"),
        // The version string, in bytes a build step may rewrite (`tb-agent --version`, `current_fw_version`).
        .target(name: "CAgentVersion"),
        // Explains TLS failures (expired, wrong CA, wrong host name) and checks the X.509 chain a board connects
        // with: the only agent module importing COpenSSL. (tb-sim's TBSimulator imports it too, for its TLS
        // listener: OpenSSL with memory BIOs in a NIO handler instead of swift-nio-ssl's BoringSSL build; it shares
        // AgentTLS's OpenSSLText.)
        .target(name: "AgentTLS", dependencies: ["COpenSSL", "TextSearch"]),

        .target(name: "TBJSON"),
        // ThingsBoard's OTA checksums (MD5, SHA-256/384/512, CRC32, MurmurHash3 32 and 128) in pure Swift, with
        // ThingsBoard's byte order: shared by tb-sim (which computes them) and the agent (which verifies them).
        .target(
            name: "TBChecksum",
            // Optimised in debug builds too: tb-sim and the tests (debug builds) checksum packages of tens of MB, which
            // unoptimised Swift hashes at about 1 MB/s.
            swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]
        ),
        // Substring search for the agent's modules, which do without _StringProcessing (see the end of this file).
        .target(name: "TextSearch"),
        // The POSIX file system and process without Foundation (files, folders, paths, environment, standard
        // streams): Glibc only, so that every module (and the fuzz targets) can use it.
        .target(name: "AgentHost"),
        // tb-agent's command line: subcommands, options, help, usage errors (exit 64), in ArgumentParser's words and
        // layout but without Foundation, which ArgumentParser always links (issue 11: the binary's size and RSS).
        .target(name: "AgentCommandLine", dependencies: ["TextSearch"]),
        // A TOML 1.0 reader: positioned values and errors, bounded depth, no Foundation (stdlib and TBJSON only).
        .target(name: "TBTOML", dependencies: ["TBJSON"]),
        .target(
            name: "AgentCore",
            dependencies: ["TBChecksum", "TBJSON", "TextSearch"]
        ),
        .target(
            name: "AgentConfig",
            dependencies: ["AgentCore", "AgentHost", "TBTOML", "TextSearch"]
        ),
        .target(
            name: "AgentPlatform",
            dependencies: [
                "AgentCore", "AgentHost", "TBChecksum", "TBJSON", "CProcessControl", "TextSearch",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "AgentMQTT",
            dependencies: ["AgentCore", "AgentHost", "AgentTLS", "CMosquitto", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "AgentGPIO",
            dependencies: ["AgentCore", "CGPIOD", .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: [.define(gpiodAPI == 2 ? "GPIOD_API_V2" : "GPIOD_API_V1")]
        ),
        // Fakes that are real modules: the simulated GPIO bank, the in-memory broker, the manual clock.
        .target(name: "AgentSimulated", dependencies: ["AgentCore", "AgentHost", "AgentPlatform", "TextSearch"]),
        // Board I/O: sensor readers, line watchers, the status LED and the button, over any GPIOBackend.
        .target(
            name: "AgentBoard",
            dependencies: ["AgentCore", "AgentGPIO", "AgentHost", "AgentPlatform", "TBJSON", .product(name: "Logging", package: "swift-log")]
        ),
        // The service: the run loop that carries out the core's decisions through its ports (no MQTT library, no
        // GPIO: tested in-process against AgentSimulated).
        .target(
            name: "AgentService",
            dependencies: [
                "AgentCore", "AgentHost", "AgentPlatform", "TBChecksum", "TBJSON",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            linkerSettings: [
                // Swift exports every symbol of an executable (-export-dynamic) so that a stripped binary's crash
                // backtrace has names. For the release agent that is 0.85 MB of dynamic symbols and a lookup scope
                // that every library's symbol resolution searches first: 0.6 MiB more resident (issue 10's RSS
                // under floods). A crash's addresses are symbolicated with the unstripped binary of the same build.
                .unsafeFlags(["-Xlinker", "--no-export-dynamic"], .when(configuration: .release)),
            ]
        ),
        .executableTarget(
            name: "tb-agent",
            dependencies: [
                "AgentCore", "AgentConfig", "AgentHost", "AgentPlatform", "AgentMQTT", "AgentGPIO", "AgentSimulated", "AgentService",
                "AgentBoard", "AgentCommandLine", "AgentTLS", "TBJSON", "TBTOML", "TextSearch", "CAgentVersion",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),

        .target(
            name: "TBSimulator",
            dependencies: [
                "TBChecksum", "TBJSON", "COpenSSL", "AgentTLS",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "tb-sim",
            dependencies: [
                "TBChecksum", "TBSimulator", "TBJSON", "TBTOML",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Shared by the test targets: free ports, processes started and stopped by PID, temporary folders.
        .target(name: "AgentTestSupport", dependencies: ["CProcessControl"], path: "Tests/AgentTestSupport"),

        .testTarget(name: "AgentCoreTests", dependencies: ["AgentCore", "TBChecksum", "TBJSON", "TextSearch"]),
        .testTarget(name: "TBChecksumTests", dependencies: ["TBChecksum"]),
        .testTarget(name: "AgentCommandLineTests", dependencies: ["AgentCommandLine"]),
        .testTarget(name: "TOMLTests", dependencies: ["TBTOML", "TBJSON", "AgentTestSupport"]),
        .testTarget(
            name: "AgentServiceTests",
            dependencies: ["AgentService", "AgentSimulated", "AgentCore", "AgentPlatform", "TBJSON", "AgentTestSupport"]
        ),
        .testTarget(
            name: "BoardIOTests",
            dependencies: ["AgentBoard", "AgentCore", "AgentGPIO", "AgentSimulated", "AgentTestSupport"]
        ),
        .testTarget(name: "AgentGPIOTests", dependencies: ["AgentGPIO", "AgentCore"]),
        .testTarget(name: "AgentConfigTests", dependencies: ["AgentConfig", "AgentCore", "AgentTestSupport"]),
        .testTarget(name: "AgentPlatformTests", dependencies: ["AgentPlatform", "AgentHost", "AgentCore", "AgentTestSupport"]),
        .testTarget(name: "AgentMQTTTests", dependencies: ["AgentMQTT", "AgentCore", "AgentTestSupport"]),
        .testTarget(name: "TBSimulatorTests", dependencies: ["TBSimulator", "TBChecksum", "TBJSON", "AgentTestSupport", .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(name: "EndToEndTests", dependencies: ["AgentTestSupport", "TBJSON", "AgentCore"]),
    ],
    swiftLanguageModes: [.v6]
)

// A file uses only what it imports itself (SE-0444), in every Swift target.
for target in package.targets where target.type != .system {
    target.swiftSettings = (target.swiftSettings ?? []) + [.enableUpcomingFeature("MemberImportVisibility")]
}

// The agent's modules do without the implicitly imported _StringProcessing (regex, and the `contains`/`firstRange`
// /`replacing` on strings it brings): linked in, it and _RegexParser add 1.25 MB to a 14 MB static binary, and the
// pages of it that are mapped count in the agent's RSS on a 512 MB board. TextSearch has the few searches the agent
// needs.
let agentModules: Set<String> = [
    "TBJSON", "TBChecksum", "TextSearch", "AgentHost", "TBTOML", "AgentCore", "AgentConfig", "AgentPlatform", "AgentMQTT", "AgentGPIO", "AgentTLS",
    "AgentSimulated", "AgentBoard", "AgentService", "AgentCommandLine", "tb-agent",
]
for target in package.targets where agentModules.contains(target.name) {
    target.swiftSettings = (target.swiftSettings ?? []) + [
        .unsafeFlags(["-Xfrontend", "-disable-implicit-string-processing-module-import"])
    ]
}
