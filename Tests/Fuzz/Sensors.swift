@testable import AgentCore

/// The kernel's sensor files: a 1-Wire `w1_slave` and `temperature`, a thermal zone's `temp`, an IIO channel.
/// Every parser reads every input (the seeds are real files).
///
/// Properties: no crash; a reading is a finite number; a failure names the file; the DS18B20 power-on value
/// (85 °C) is never a reading; integers in millidegrees come out exact to the thousandth.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: fuzzInput(data, size), as: UTF8.self)
    SensorsFuzz.check("w1_slave", text) { () throws(SensorFailure) in
        let c = try SensorParsers.ds18b20W1Slave(text, file: "w1_slave")
        require(c != 85, "the DS18B20 power-on value was taken for a reading")
        return c
    }
    SensorsFuzz.check("temperature", text) { () throws(SensorFailure) in
        let c = try SensorParsers.ds18b20Temperature(text, file: "temperature")
        require(c != 85, "the DS18B20 power-on value was taken for a reading")
        SensorsFuzz.exactThousandths(c, text)
        return c
    }
    SensorsFuzz.check("temp", text) { () throws(SensorFailure) in
        let c = try SensorParsers.thermal(text, file: "temp")
        SensorsFuzz.exactThousandths(c, text)
        return c
    }
    for (scale, offset) in [(1.0, 0.0), (0.001, 0.0), (0.0625, -273.15), (1e-9, 1e9), (1e300, 0)] {
        SensorsFuzz.check("in_temp_raw", text) { () throws(SensorFailure) in
            try SensorParsers.iio(text, scale: scale, offset: offset, file: "in_temp_raw")
        }
    }
    return 0
}

enum SensorsFuzz {
    static func check(_ file: String, _ text: String, _ parse: () throws(SensorFailure) -> Double) {
        do {
            let value = try parse()
            require(value.isFinite, "\(file): \(value) from \(SensorParsers.quote(text))")
        } catch {
            require(error.message.hasPrefix(file + ":"), "a failure that does not name the file: \(error.message)")
        }
    }

    /// A whole number of millidegrees converts exactly: `c` is the Double nearest to text/1000.
    static func exactThousandths(_ c: Double, _ text: String) {
        guard let milli = Int(BoardText.trim(text)), abs(milli) < 1 << 50 else { return }
        require(c == Double("\(milli)e-3"), "\(milli) millidegrees read as \(c)")
    }
}
