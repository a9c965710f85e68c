import NIOCore

/// Encodes server packets for the session's protocol level, as ThingsBoard's Netty `MqttEncoder` writes them.
public struct MQTTEncoder: MessageToByteEncoder {
    public typealias OutboundIn = MQTTOutbound

    public init() {}

    public func encode(data: MQTTOutbound, out: inout ByteBuffer) throws {
        Self.encode(data, into: &out)
    }

    /// Appends the packet's bytes to `out`.
    public static func encode(_ data: MQTTOutbound, into out: inout ByteBuffer) {
        let v5 = data.version.isV5
        var body = ByteBuffer()
        let firstByte: UInt8
        switch data.packet {
        case .connack(let sessionPresent, let code):
            firstByte = 0x20
            body.writeInteger(UInt8(sessionPresent ? 1 : 0))
            body.writeInteger(code)
            if v5 { body.writeInteger(UInt8(0)) }
        case .publish(let publish):
            firstByte = 0x30 | (publish.dup ? 0x08 : 0) | (publish.qos << 1) | (publish.retain ? 0x01 : 0)
            writeString(publish.topic, into: &body)
            if publish.qos > 0 { body.writeInteger(publish.packetID ?? 0) }
            if v5 { body.writeInteger(UInt8(0)) }
            body.writeBytes(publish.payload)
        case .puback(let packetID, let reason):
            firstByte = 0x40
            body.writeInteger(packetID)
            // Netty writes the reason code only when it is not success (MQTT 5 allows omitting it then).
            if v5 && reason != MQTTReasonCode.success { body.writeInteger(reason) }
        case .suback(let packetID, let codes):
            firstByte = 0x90
            body.writeInteger(packetID)
            if v5 { body.writeInteger(UInt8(0)) }
            body.writeBytes(codes)
        case .unsuback(let packetID, let codes):
            firstByte = 0xB0
            body.writeInteger(packetID)
            if v5 {
                body.writeInteger(UInt8(0))
                body.writeBytes(codes)
            }
        case .pingresp:
            firstByte = 0xD0
        case .disconnect(let reason):
            firstByte = 0xE0
            body.writeInteger(reason)
            body.writeInteger(UInt8(0))
        }
        out.writeInteger(firstByte)
        writeVariableInteger(body.readableBytes, into: &out)
        out.writeBuffer(&body)
    }

    static func writeString(_ s: String, into out: inout ByteBuffer) {
        let bytes = Array(s.utf8)
        out.writeInteger(UInt16(truncatingIfNeeded: bytes.count))
        out.writeBytes(bytes)
    }

    static func writeVariableInteger(_ value: Int, into out: inout ByteBuffer) {
        var v = value
        repeat {
            var byte = UInt8(v % 128)
            v /= 128
            if v > 0 { byte |= 0x80 }
            out.writeInteger(byte)
        } while v > 0
    }
}
