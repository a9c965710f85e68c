@testable import AgentCore
import TBJSON

/// Server-side RPC requests: `RemoteControl.parseRPC(topic:payload:)`.
///
/// The input is `ID\0PAYLOAD` (or only a payload, with the id "7"), so the topic's id is fuzzed too.
/// Properties: no crash; a request on the RPC topic with a plain id always gets an answer (a command or an error
/// reply) on `v1/devices/me/rpc/response/ID`, anything else is not an RPC; an accepted `identify` lasts more than
/// 0 and at most an hour; an error reply is strict JSON `{"error": "..."}`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRPC(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    let (idBytes, payload) = splitOnce(bytes, at: 0)
    let id = idBytes.map { String(decoding: $0, as: UTF8.self) } ?? "7"
    let topic = RemoteControl.rpcRequestPrefix + id
    let rpc = RemoteControl.parseRPC(topic: topic, payload: payload)
    let isRequestTopic = !id.isEmpty && !id.utf8.contains(UInt8(ascii: "/"))
    require((rpc != nil) == isRequestTopic, "topic \(topic) answered: \(rpc != nil)")
    require(RemoteControl.parseRPC(topic: "v1/devices/me/rpc/response/" + id, payload: payload) == nil, "a response topic taken for a request")
    guard let rpc else { return 0 }
    require(rpc.id == id && rpc.responseTopic == RemoteControl.rpcResponsePrefix + id, "wrong id or reply topic for \(topic)")
    switch rpc.result {
    case .success(.identify(let duration)):
        require(duration > .zero && duration <= .seconds(3600), "identify for \(duration)")
    case .success:
        break
    case .failure(let error):
        require(!error.message.isEmpty, "an empty error message")
        let reply = error.reply.serialized
        require((try? JSONValue.parse(reply))?["error"]?.stringValue == error.message, "the error reply is not JSON: \(reply)")
    }
    return 0
}
