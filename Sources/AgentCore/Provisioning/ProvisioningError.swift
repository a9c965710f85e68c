/// Why provisioning did not produce credentials. Each case has its own message, naming what happened and what a
/// person can do; `agentError` gives the command line's form. No case carries a secret or a reply's payload.
public enum ProvisioningError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `NOT_FOUND`: wrong key, wrong secret, or provisioning disabled in the profile (they look identical).
    case notFound(server: ServerEndpoint)
    /// `FAILURE`: with "allow create new devices", a device with this name exists already.
    case failure(deviceName: String, server: ServerEndpoint)
    /// The reply on `/provision/response` is not a JSON object.
    case unparseableReply(reason: String, byteCount: Int)
    /// The reply has no `status` or one this agent does not know.
    case unknownStatus(String?)
    /// `SUCCESS`, but the credentials are missing or empty.
    case successWithoutCredentials(detail: String)
    /// `SUCCESS` with credentials an MQTT CONNECT cannot carry (a control character, a noncharacter, too long):
    /// not stored; the server has created the device with them, so a person must act.
    case unusableCredentials(detail: String)
    /// `SUCCESS` with a credentials type this agent cannot use (LWM2M_CREDENTIALS, …).
    case unsupportedCredentialsType(String)
    /// The TCP connection or the MQTT CONNECT failed (the message names host:port and the fix).
    case connectFailed(AgentError)
    /// The server refused the subscription to `/provision/response` (SUBACK 0x80).
    case subscriptionRefused(server: ServerEndpoint)
    /// The server closed the session before answering.
    case closedWithoutAnswer(server: ServerEndpoint, afterPublish: Bool)
    /// No answer within the timeout.
    case timedOut(server: ServerEndpoint, after: Duration)

    public static func == (lhs: ProvisioningError, rhs: ProvisioningError) -> Bool {
        lhs.description == rhs.description && lhs.agentError.code == rhs.agentError.code
    }

    public var agentError: AgentError {
        switch self {
        case .notFound(let server):
            return AgentError(
                .provisioningRefused,
                "the server \(server) did not accept the provision key or secret (NOT_FOUND): check the device profile's provisioning settings on the server (strategy not Disabled, key and secret as in [provisioning] device_key and device_secret)")
        case .failure(let name, let server):
            return AgentError(
                .provisioningRefused,
                "the server \(server) refused to provision device \"\(name)\" (FAILURE): a device with this name probably exists already (or, with pre-provisioned devices, it was provisioned before or is in another profile); delete it on the server or use pre-provisioned devices")
        case .unparseableReply(let reason, let count):
            return AgentError(
                .provisioningFailed,
                "the reply on \(ProvisionRequest.responseTopic) (\(count) bytes) is not a JSON object (\(reason)): is the server at this address ThingsBoard?")
        case .unknownStatus(let status):
            let what = status.map { "the unknown status \"\($0)\"" } ?? "no status"
            return AgentError(
                .provisioningFailed,
                "the reply on \(ProvisionRequest.responseTopic) has \(what) (expected SUCCESS, NOT_FOUND or FAILURE): is the server at this address ThingsBoard?")
        case .successWithoutCredentials(let detail):
            return AgentError(
                .provisioningFailed,
                "the server answered SUCCESS but sent no usable credentials (\(detail)); check the device's credentials on the server")
        case .unusableCredentials(let detail):
            return AgentError(
                .provisioningRefused,
                "the server answered SUCCESS with credentials this agent cannot use (\(detail)), so they were not stored; the device now exists on the server with them and ThingsBoard provisions a device only once: delete the device on the server (and if [provisioning] sets the token or the MQTT_BASIC fields, correct them), then the agent provisions it again")
        case .unsupportedCredentialsType(let type):
            return AgentError(
                .provisioningFailed,
                "the server issued credentials of type \(type), which this agent cannot use: set [provisioning] credentials_type to ACCESS_TOKEN, MQTT_BASIC or X509_CERTIFICATE")
        case .connectFailed(let error):
            return error
        case .subscriptionRefused(let server):
            return AgentError(
                .provisioningFailed,
                "the server \(server) refused the subscription to \(ProvisionRequest.responseTopic): it does not seem to be ThingsBoard's MQTT transport, or provisioning over MQTT is not enabled there")
        case .closedWithoutAnswer(let server, let afterPublish):
            if afterPublish {
                return AgentError(
                    .provisioningFailed,
                    "the server \(server) closed the connection without answering the provision request: ThingsBoard does this when the request lacks the key or secret, a field is null or malformed, or its core did not answer in time; check [provisioning] and try again")
            }
            return AgentError(
                .provisioningFailed,
                "the server \(server) closed the connection before the provision request could be sent; try again, and check that it is ThingsBoard's MQTT port")
        case .timedOut(let server, let after):
            return AgentError(
                .timeout,
                "no answer to the provision request from \(server) within \(DurationText.format(after)): the server may be overloaded or not ThingsBoard; try again later, or raise [provisioning] timeout")
        }
    }

    public var description: String { self.agentError.description }
}
