//! Close codes (RFC 6455 section 7.4): the codes the server sends and the rule for which codes a
//! received Close frame may carry. Depends on nothing.

/// A close status code, as carried in the first two bytes of a Close frame's payload.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection is fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the server is going away (shutdown).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the framing protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a kind of data the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1007: a text message or close reason is not valid UTF-8.
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message violates the endpoint's policy.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a message is larger than the endpoint accepts.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1013: the server cannot take the connection now (a limit); the client may retry later.
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);

    /// Whether a peer may send this code in a Close frame. Valid: 1000–1003, 1007–1014 (the
    /// registered codes, 1010 included since the server is the one receiving it) and 3000–4999
    /// (registered with IANA or private). Never on the wire: 1004 (reserved), 1005 (no code),
    /// 1006 (abnormal closure), 1015 (TLS failure); everything else below 3000 is unassigned and
    /// 5000 and above are undefined.
    pub fn is_valid_received(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}
