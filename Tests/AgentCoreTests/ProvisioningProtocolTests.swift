import AgentCore
import TBJSON
import Testing

@Suite struct ProvisionRequestTests {
    static let base = ProvisionRequest(
        deviceName: "rpi-0001", provisionDeviceKey: "key", provisionDeviceSecret: Secret("secret"))

    /// No `null` anywhere in the tree.
    static func containsNull(_ value: JSONValue) -> Bool {
        switch value {
        case .null: return true
        case .array(let elements): return elements.contains(where: containsNull)
        case .object(let members): return members.contains { containsNull($0.1) }
        default: return false
        }
    }

    @Test func minimalRequestHasOnlyTheThreeFieldsInOrder() {
        #expect(String(decoding: Self.base.payload, as: UTF8.self)
            == #"{"deviceName":"rpi-0001","provisionDeviceKey":"key","provisionDeviceSecret":"secret"}"#)
    }

    @Test func accessTokenWithAndWithoutToken() throws {
        var request = Self.base
        request.credentialsType = .accessToken
        #expect(request.json.objectMembers?.map(\.0) == ["deviceName", "provisionDeviceKey", "provisionDeviceSecret", "credentialsType"])
        request.token = Secret("")
        #expect(request.json["token"] == nil)
        request.token = Secret("my-token")
        #expect(request.json["token"] == "my-token")
        #expect(request.json["credentialsType"] == "ACCESS_TOKEN")
    }

    @Test func mqttBasicOmitsMissingFields() {
        var request = Self.base
        request.credentialsType = .mqttBasic
        request.clientId = "cid"
        #expect(request.json.objectMembers?.map(\.0)
            == ["deviceName", "provisionDeviceKey", "provisionDeviceSecret", "credentialsType", "clientId"])
        request.username = "user"
        request.password = Secret("pw")
        #expect(request.json["username"] == "user")  // the request says username; the response says userName
        #expect(request.json["password"] == "pw")
        #expect(!Self.containsNull(request.json))
    }

    @Test func x509SendsTheCertificateAsHash() {
        var request = Self.base
        request.credentialsType = .x509Certificate
        request.certificatePEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
        #expect(request.json["hash"]?.stringValue == request.certificatePEM)
    }

    @Test func fieldsOfOtherTypesAreNotSent() {
        var request = Self.base
        request.credentialsType = .accessToken
        request.clientId = "cid"
        request.username = "user"
        request.certificatePEM = "PEM"
        #expect(request.json["clientId"] == nil)
        #expect(request.json["username"] == nil)
        #expect(request.json["hash"] == nil)
        // Without a type, nothing but the three fields.
        request.credentialsType = nil
        request.token = Secret("t")
        #expect(request.json.objectMembers?.count == 3)
    }

    @Test(arguments: CredentialsType.allCases)
    func neverNull(_ type: CredentialsType) {
        var request = Self.base
        request.credentialsType = type
        #expect(!Self.containsNull(request.json))
        request.token = Secret("")
        request.clientId = ""
        request.username = nil
        request.password = Secret("")
        request.certificatePEM = ""
        #expect(!Self.containsNull(request.json))
        #expect(!String(decoding: request.payload, as: UTF8.self).contains("null"))
    }

    @Test func settingsMapOntoTheRequest() {
        let settings = ProvisioningSettings(
            deviceKey: "k", deviceSecret: Secret("s"), credentialsType: .mqttBasic, clientId: "c", username: "u",
            password: Secret("p"))
        let request = ProvisionRequest(deviceName: "d", settings: settings)
        #expect(request.json.serialized
            == #"{"deviceName":"d","provisionDeviceKey":"k","provisionDeviceSecret":"s","credentialsType":"MQTT_BASIC","clientId":"c","username":"u","password":"p"}"#)
    }

    @Test func validationNamesTheKeyToFix() {
        var request = Self.base
        request.deviceName = "  "
        #expect(throws: AgentError.self) { try request.validate() }
        request = Self.base
        request.provisionDeviceSecret = Secret("")
        do {
            try request.validate()
            Issue.record("empty secret accepted")
        } catch {
            #expect(error.message.contains("device_secret"))
        }
        request = Self.base
        request.credentialsType = .mqttBasic
        request.password = Secret("pw")
        request.clientId = "c"
        do {
            try request.validate()
            Issue.record("password without user name accepted")
        } catch {
            #expect(error.message.contains("username"))
            #expect(!error.message.contains("pw\""))
        }
        request = Self.base
        request.credentialsType = .x509Certificate
        #expect(throws: AgentError.self) { try request.validate() }
        #expect(throws: Never.self) { try Self.base.validate() }
    }

    @Test func descriptionHidesTheSecret() {
        let text = "\(Self.base) \(String(reflecting: Self.base))"
        #expect(!text.contains("provisionDeviceSecret: \"secret\""))
        #expect(!text.contains("\"secret\""))
    }
}

@Suite struct ProvisionResponseTests {
    static let server = ServerEndpoint(host: "tb.local", port: 1883)

    static func decode(_ text: String) throws(ProvisioningError) -> ProvisionResponse {
        try ProvisionResponse.decode(Array(text.utf8))
    }

    @Test func accessToken() throws {
        #expect(try Self.decode(#"{"credentialsValue":"Ab3","credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}"#)
            == .success(.accessToken(Secret("Ab3"))))
    }

    @Test func mqttBasicWithCapitalNAndNulls() throws {
        #expect(try Self.decode(#"{"credentialsValue":{"clientId":"c","userName":"u","password":"p"},"credentialsType":"MQTT_BASIC","status":"SUCCESS"}"#)
            == .success(.mqttBasic(clientId: "c", username: "u", password: Secret("p"))))
        #expect(try Self.decode(#"{"credentialsValue":{"clientId":null,"userName":"u","password":null},"credentialsType":"MQTT_BASIC","status":"SUCCESS"}"#)
            == .success(.mqttBasic(clientId: nil, username: "u", password: nil)))
        #expect(try Self.decode(#"{"credentialsValue":{"clientId":"c","userName":null,"password":null},"credentialsType":"MQTT_BASIC","status":"SUCCESS"}"#)
            == .success(.mqttBasic(clientId: "c", username: nil, password: nil)))
    }

    @Test func x509Certificate() throws {
        #expect(try ProvisionResponse.decode(
            Array(#"{"credentialsValue":"MIIBcert","credentialsType":"X509_CERTIFICATE","status":"SUCCESS"}"#.utf8),
            certificateFile: "/c.pem", keyFile: "/k.pem")
            == .success(.x509Certificate(certificate: "MIIBcert", certificateFile: "/c.pem", keyFile: "/k.pem")))
    }

    @Test func legacyShape() throws {
        #expect(try Self.decode(#"{"provisionDeviceStatus":"SUCCESS","accessToken":"legacy-token"}"#)
            == .success(.accessToken(Secret("legacy-token"))))
        #expect(try Self.decode(#"{"provisionDeviceStatus":"NOT_FOUND"}"#) == .notFound(errorMessage: nil))
    }

    @Test func refusals() throws {
        #expect(try Self.decode(#"{"errorMsg":"Provision data was not found!","status":"NOT_FOUND"}"#)
            == .notFound(errorMessage: "Provision data was not found!"))
        #expect(try Self.decode(#"{"errorMsg":"Failed to provision device!","status":"FAILURE"}"#)
            == .failure(errorMessage: "Failed to provision device!"))
    }

    @Test func refusalsBecomeErrorsWithTheirMessages() {
        #expect(throws: ProvisioningError.notFound(server: Self.server)) {
            try ProvisionResponse.credentials(from: Array(#"{"status":"NOT_FOUND"}"#.utf8), deviceName: "d", server: Self.server)
        }
        #expect(throws: ProvisioningError.failure(deviceName: "dev-7", server: Self.server)) {
            try ProvisionResponse.credentials(from: Array(#"{"status":"FAILURE"}"#.utf8), deviceName: "dev-7", server: Self.server)
        }
        let notFound = ProvisioningError.notFound(server: Self.server).agentError
        #expect(notFound.code == .provisioningRefused)
        #expect(notFound.message.contains("did not accept the provision key or secret"))
        #expect(notFound.message.contains("device profile's provisioning settings"))
        let failure = ProvisioningError.failure(deviceName: "dev-7", server: Self.server).agentError
        #expect(failure.code == .provisioningRefused)
        #expect(failure.message.contains("refused to provision device \"dev-7\""))
        #expect(failure.message.contains("delete it on the server or use pre-provisioned devices"))
    }

    @Test(arguments: ["", "not json", "[1,2]", "\"SUCCESS\"", "{\"status\":", "null"])
    func unparseable(_ text: String) {
        #expect {
            try Self.decode(text)
        } throws: { error in
            guard let error = error as? ProvisioningError, case .unparseableReply(_, let count) = error else { return false }
            return count == text.utf8.count && error.agentError.code == .provisioningFailed
        }
    }

    @Test func unknownOrMissingStatus() {
        #expect(throws: ProvisioningError.unknownStatus("PENDING")) { try Self.decode(#"{"status":"PENDING"}"#) }
        #expect(throws: ProvisioningError.unknownStatus(nil)) { try Self.decode(#"{"credentialsValue":"x"}"#) }
        #expect(throws: ProvisioningError.unknownStatus("1")) { try Self.decode(#"{"status":1}"#) }
    }

    @Test(arguments: [
        #"{"status":"SUCCESS"}"#,
        #"{"credentialsValue":null,"credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}"#,
        #"{"credentialsValue":"","credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}"#,
        #"{"credentialsValue":{"a":1},"credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}"#,
        #"{"credentialsValue":{"clientId":null,"userName":null,"password":"p"},"credentialsType":"MQTT_BASIC","status":"SUCCESS"}"#,
        #"{"credentialsValue":"","credentialsType":"X509_CERTIFICATE","status":"SUCCESS"}"#,
    ])
    func successWithoutCredentials(_ text: String) {
        #expect {
            try Self.decode(text)
        } throws: { error in
            guard let error = error as? ProvisioningError, case .successWithoutCredentials = error else { return false }
            return error.agentError.code == .provisioningFailed
        }
    }

    /// Found by the fault suite: a 2 MiB "token" was accepted and stored, and the store could not be read back.
    /// Issue 10 (finding 4) then set the bound to what credentials really are: 256 bytes.
    @Test func credentialsTooLongAreRefused() throws {
        let long = String(repeating: "T", count: DeviceCredentials.maxFieldBytes + 1)
        for text in [
            #"{"credentialsValue":"\#(long)","credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}"#,
            #"{"credentialsValue":{"clientId":"c","userName":"u","password":"\#(long)"},"credentialsType":"MQTT_BASIC","status":"SUCCESS"}"#,
            #"{"credentialsValue":"\#(String(repeating: "T", count: 2 << 20))","credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}"#,
        ] {
            #expect {
                try Self.decode(text)
            } throws: { error in
                guard let error = error as? ProvisioningError, case .unusableCredentials = error else { return false }
                return error.description.contains("256") && error.agentError.code == .provisioningRefused
            }
        }
        let longest = String(repeating: "T", count: DeviceCredentials.maxFieldBytes)
        #expect(try Self.decode(#"{"credentialsValue":"\#(longest)","credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}"#)
            == .success(.accessToken(Secret(longest))))
    }

    @Test func unsupportedType() {
        #expect(throws: ProvisioningError.unsupportedCredentialsType("LWM2M_CREDENTIALS")) {
            try Self.decode(#"{"credentialsValue":"x","credentialsType":"LWM2M_CREDENTIALS","status":"SUCCESS"}"#)
        }
    }

    @Test func errorsNeverCarryThePayload() {
        let secretish = #"{"credentialsValue":"tok-SECRET","status":"WEIRD"}"#
        do {
            _ = try Self.decode(secretish)
        } catch {
            #expect(!error.description.contains("tok-SECRET"))
        }
        do {
            _ = try Self.decode("tok-SECRET garbage")
        } catch {
            #expect(!error.description.contains("tok-SECRET"))
        }
    }
}

@Suite struct ProvisioningSessionTests {
    static let server = ServerEndpoint(host: "tb.local", port: 1883)
    static let request = ProvisionRequest(deviceName: "d", provisionDeviceKey: "k", provisionDeviceSecret: Secret("s"))

    @Test func happyPathOrder() {
        var session = ProvisioningSession(request: Self.request, server: Self.server)
        #expect(session.connected() == .subscribe(topic: "/provision/response", qos: 1))
        #expect(session.subscribed(grantedQoS: [1]) == .publish(topic: "/provision/request", payload: Self.request.payload, qos: 1))
        #expect(session.received(topic: "v1/devices/me/attributes", payload: []) == .none)
        #expect(session.received(topic: "/provision/response", payload: Array(#"{"credentialsValue":"t","credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}"#.utf8))
            == .finish(.success(.accessToken(Secret("t")))))
        #expect(session.phase == .finished)
        // Once finished, nothing more happens.
        #expect(session.closed() == .none)
        #expect(session.timedOut(after: .seconds(1)) == .none)
    }

    @Test func refusedSubscription() {
        var session = ProvisioningSession(request: Self.request, server: Self.server)
        _ = session.connected()
        #expect(session.subscribed(grantedQoS: [0x80]) == .finish(.failure(.subscriptionRefused(server: Self.server))))
    }

    @Test func closedAtEachPhase() {
        var connecting = ProvisioningSession(request: Self.request, server: Self.server)
        guard case .finish(.failure(.connectFailed)) = connecting.closed() else {
            Issue.record("closing while connecting")
            return
        }
        var subscribing = ProvisioningSession(request: Self.request, server: Self.server)
        _ = subscribing.connected()
        #expect(subscribing.closed() == .finish(.failure(.closedWithoutAnswer(server: Self.server, afterPublish: false))))
        var waiting = ProvisioningSession(request: Self.request, server: Self.server)
        _ = waiting.connected()
        _ = waiting.subscribed(grantedQoS: [1])
        #expect(waiting.closed() == .finish(.failure(.closedWithoutAnswer(server: Self.server, afterPublish: true))))
    }

    @Test func timeoutAndDistinctMessages() {
        var session = ProvisioningSession(request: Self.request, server: Self.server)
        _ = session.connected()
        _ = session.subscribed(grantedQoS: [1])
        #expect(session.timedOut(after: .seconds(30)) == .finish(.failure(.timedOut(server: Self.server, after: .seconds(30)))))
        let errors: [ProvisioningError] = [
            .notFound(server: Self.server), .failure(deviceName: "d", server: Self.server),
            .unparseableReply(reason: "r", byteCount: 3), .unknownStatus("X"), .unknownStatus(nil),
            .successWithoutCredentials(detail: "x"), .unsupportedCredentialsType("L"),
            .subscriptionRefused(server: Self.server), .closedWithoutAnswer(server: Self.server, afterPublish: true),
            .closedWithoutAnswer(server: Self.server, afterPublish: false), .timedOut(server: Self.server, after: .seconds(30)),
        ]
        #expect(Set(errors.map(\.description)).count == errors.count)
        #expect(ProvisioningError.timedOut(server: Self.server, after: .seconds(30)).description.contains("30s"))
        #expect(ProvisioningError.timedOut(server: Self.server, after: .seconds(30)).agentError.code == .timeout)
    }
}
