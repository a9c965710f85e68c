@testable import AgentCore
import TBJSON

/// Shared-attribute payloads (pushes on `v1/devices/me/attributes` and attribute responses), parsed leniently the
/// way the runtime does, then `RemoteControl.IntervalOverrides.apply(_:sensors:)`.
///
/// Properties: no crash; every interval kept lies within 100 ms...24 h; each ignored value is reported once, with
/// its key; applying the same update twice changes nothing more (an update is idempotent).
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
            for problem in problems {
                require(problem.hasPrefix("shared attribute interval"), "a problem without its key: \(problem)")
            }
            var twice = overrides
            _ = twice.apply(update, sensors: ["door", "temp"])
            require(twice == overrides, "applying \(update.serialized) twice differs from once")
        }
    }
    return 0
}
