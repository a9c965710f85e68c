@testable import AgentCore
import TBJSON

/// Shared-attribute payloads (pushes on `v1/devices/me/attributes` and attribute responses), parsed leniently the
/// way the runtime does, then `RemoteControl.IntervalOverrides.apply(_:sensors:)`.
///
/// Properties: no crash; every interval kept lies within 100 ms...24 h and belongs to `interval` or a configured
/// sensor (the server cannot grow the agent's memory with keys of its own); each ignored value is reported with its
/// key, keys for unknown sensors in one counted line; at most 9 problem lines whatever the update; applying the same
/// update twice changes nothing more (an update is idempotent).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAttributes(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    for lenient in [true, false] {
        guard let update = try? JSONValue.parse(bytes, lenient: lenient) else { continue }
        let starts = [
            RemoteControl.IntervalOverrides(),
            RemoteControl.IntervalOverrides(all: .seconds(5), perSensor: ["cpu": .seconds(10), "": .milliseconds(100)]),
        ]
        for start in starts {
            var overrides = start
            let problems = overrides.apply(update, sensors: ["door", "temp"])
            let range = RemoteControl.IntervalOverrides.minimum...RemoteControl.IntervalOverrides.maximum
            for duration in [overrides.all].compactMap({ $0 }) + Array(overrides.perSensor.values) {
                require(range.contains(duration), "interval \(duration) kept from \(update.serialized)")
            }
            let configured: Set<String> = ["door", "temp"]
            for key in overrides.perSensor.keys where start.perSensor[key] == nil {
                require(configured.contains(key), "an interval kept for \(key), which is not a configured sensor")
            }
            require(problems.count <= 9, "\(problems.count) problem lines for one update")
            for problem in problems {
                require(
                    problem.hasPrefix("shared attribute interval") || problem.hasPrefix("ignored "),
                    "a problem without its key: \(problem)")
            }
            var twice = overrides
            _ = twice.apply(update, sensors: ["door", "temp"])
            require(twice == overrides, "applying \(update.serialized) twice differs from once")
        }
    }
    return 0
}
