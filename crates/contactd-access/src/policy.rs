//! RAM-style policies: the policy file's format, its strict parse into compiled patterns, and
//! the decision for one call.
//!
//! # The policy file
//!
//! One JSON object (UTF-8, at most 1 MiB):
//!
//! ```json
//! {
//!   "Version": "1",
//!   "Policies": {
//!     "ContactsReader": {
//!       "Version": "1",
//!       "Statement": [
//!         {"Effect": "Allow",
//!          "Action": ["resourcemanager:Get*", "resourcemanager:List*"],
//!          "Resource": "acs:resourcemanager:*:*:messagecontact/*"},
//!         {"Effect": "Deny", "Action": "resourcemanager:*", "Resource": "*",
//!          "Condition": {"NotIpAddress": {"acs:SourceIp": ["10.0.0.0/8", "127.0.0.1"]}}}
//!       ]
//!     }
//!   },
//!   "Attachments": [
//!     {"Principal": "token:billing-svc", "Policies": ["ContactsReader"]},
//!     {"Principal": "account:*", "Policies": ["ContactsReader"]}
//!   ]
//! }
//! ```
//!
//! - The top level has exactly the keys `Version` (the string `"1"`), `Policies` (an object from
//!   policy name to policy, possibly empty) and `Attachments` (an array, possibly empty).
//! - A policy has exactly `Version` (`"1"`) and `Statement` (an array of statements; an empty one
//!   grants nothing).
//! - A statement has `Effect` (`"Allow"` or `"Deny"`), `Action` and `Resource` (each a string or a
//!   non-empty array of strings) and optionally `Condition`.
//! - `Condition` is an object from operator to an object from key to values. The operators are
//!   `IpAddress` and `NotIpAddress`; the only key is `acs:SourceIp` (its case is ignored, as RAM
//!   ignores it); the values are a string or a non-empty array of strings, each an IPv4 or IPv6
//!   address or a CIDR block (`10.0.0.0/8`, `2001:db8::/32`; a block with host bits set, such as
//!   `10.1.0.0/8`, is refused as a likely typo). Several operators in one condition must all
//!   hold; the values of one key hold when any of them does. IPv4-mapped IPv6 addresses
//!   (`::ffff:10.1.2.3`) are compared as the IPv4 address they map.
//! - An attachment has exactly `Principal` (a pattern over the caller's principal as it prints:
//!   `account:<id>`, `token:<subject>`, `certificate:<identity>`, `service:<part>`) and
//!   `Policies` (a non-empty array naming policies of `Policies`).
//! - Patterns: `*` matches any run of characters (possibly none), `?` exactly one character;
//!   every other character matches itself. Actions are compared ignoring ASCII case (as RAM
//!   does); resources and principals are compared exactly.
//! - Anything else — an unknown key, operator or effect, another version, a duplicate key, an
//!   attachment naming a missing policy, an empty list, a malformed address — refuses the whole
//!   file, with a message saying where (`Policies.ContactsReader.Statement[1].Condition: unknown
//!   operator "StringEquals"`): a policy we do not understand must never silently allow.
//! - Bounds: at most 10 000 statements and 10 000 attachments in all, 1 000 entries in one list
//!   and 1 024 bytes in one pattern.
//!
//! # The decision
//!
//! The statements considered are those of every policy attached by an attachment whose
//! `Principal` pattern matches the caller. A matching `Deny` wins (explicit deny); otherwise a
//! matching `Allow` allows; otherwise the call is denied implicitly. A statement matches when one
//! of its actions matches the call's action, one of its resources the call's resource, and its
//! condition holds.
//!
//! A call whose source address is unknown fails closed: a condition of an `Allow` statement does
//! not hold (the Allow does not apply), and a condition of a `Deny` statement holds (the Deny
//! applies), whatever its operators. So neither `IpAddress` nor `NotIpAddress` can be used to
//! reach more by hiding the source.

use std::fmt;
use std::net::IpAddr;

use contactd_app::Principal;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The largest policy file accepted.
pub const MAX_POLICY_FILE_BYTES: usize = 1 << 20;
const MAX_STATEMENTS: usize = 10_000;
const MAX_ATTACHMENTS: usize = 10_000;
const MAX_LIST_ENTRIES: usize = 1_000;
const MAX_PATTERN_BYTES: usize = 1_024;

/// A policy file that was refused; its `Display` says where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError(String);

impl PolicyError {
    fn at(location: &str, message: impl fmt::Display) -> Self {
        if location.is_empty() {
            Self(message.to_string())
        } else {
            Self(format!("{location}: {message}"))
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PolicyError {}

/// One call to decide on.
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    pub principal: &'a Principal,
    /// The RAM action, such as `resourcemanager:GetMessageContact`.
    pub action: &'a str,
    /// The RAM resource, such as `acs:resourcemanager:*:1234:messagecontact/c-…`.
    pub resource: &'a str,
    /// The caller's address, when the transport knows it.
    pub source: Option<IpAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// No statement allows the call.
    ImplicitDeny,
    /// A `Deny` statement matches the call.
    ExplicitDeny,
}

/// A parsed and compiled policy file.
#[derive(Debug, Clone)]
pub struct PolicySet {
    /// The statements of each policy, in the order of `policy_names`.
    policies: Vec<Vec<Statement>>,
    policy_names: Vec<String>,
    attachments: Vec<Attachment>,
}

#[derive(Debug, Clone)]
struct Attachment {
    principal: Pattern,
    /// Indexes into `PolicySet::policies`.
    policies: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone)]
struct Statement {
    effect: Effect,
    actions: Vec<Pattern>,
    resources: Vec<Pattern>,
    /// All must hold.
    conditions: Vec<IpCondition>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IpOperator {
    IpAddress,
    NotIpAddress,
}

#[derive(Debug, Clone)]
struct IpCondition {
    operator: IpOperator,
    /// The address is in one of them.
    blocks: Vec<IpBlock>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IpBlock {
    network: IpAddr,
    prefix_len: u8,
}

impl PolicySet {
    /// Parses and compiles a policy file; see the module docs for the format.
    pub fn parse(json: &str) -> Result<PolicySet, PolicyError> {
        if json.len() > MAX_POLICY_FILE_BYTES {
            return Err(PolicyError::at(
                "",
                format_args!(
                    "the policy file has {} bytes, more than the {MAX_POLICY_FILE_BYTES} allowed",
                    json.len()
                ),
            ));
        }
        let StrictValue(document) = serde_json::from_str(json)
            .map_err(|error| PolicyError::at("", format_args!("not valid JSON: {error}")))?;
        compile(&document)
    }

    /// The names of the policies the file defines, in their order (for printing the effective
    /// configuration).
    pub fn policy_names(&self) -> impl Iterator<Item = &str> {
        self.policy_names.iter().map(String::as_str)
    }

    pub fn decide(&self, request: &AccessRequest<'_>) -> Decision {
        let principal = Text([
            request.principal.proof.as_str(),
            ":",
            &request.principal.name,
        ]);
        let action = Text([request.action, "", ""]);
        let resource = Text([request.resource, "", ""]);
        let source = request.source.map(|address| address.to_canonical());
        let mut allowed = false;
        for attachment in &self.attachments {
            if !attachment.principal.matches(&principal) {
                continue;
            }
            for &policy in &attachment.policies {
                for statement in self.policies.get(policy).into_iter().flatten() {
                    // Once allowed, only a Deny can change the answer.
                    if allowed && statement.effect == Effect::Allow {
                        continue;
                    }
                    if statement.applies(&action, &resource, source) {
                        match statement.effect {
                            Effect::Deny => return Decision::ExplicitDeny,
                            Effect::Allow => allowed = true,
                        }
                    }
                }
            }
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        }
    }
}

impl Statement {
    fn applies(&self, action: &Text<'_>, resource: &Text<'_>, source: Option<IpAddr>) -> bool {
        self.actions.iter().any(|pattern| pattern.matches(action))
            && self
                .resources
                .iter()
                .any(|pattern| pattern.matches(resource))
            && self
                .conditions
                .iter()
                .all(|condition| condition.holds(source, self.effect))
    }
}

impl IpCondition {
    fn holds(&self, source: Option<IpAddr>, effect: Effect) -> bool {
        let Some(source) = source else {
            // Fail closed: see the module docs.
            return effect == Effect::Deny;
        };
        let inside = self.blocks.iter().any(|block| block.contains(source));
        match self.operator {
            IpOperator::IpAddress => inside,
            IpOperator::NotIpAddress => !inside,
        }
    }
}

impl IpBlock {
    fn parse(raw: &str) -> Result<Self, String> {
        let (address, prefix) = match raw.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (raw, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("{raw:?} is not an IP address or CIDR block"))?;
        let network = network.to_canonical();
        let max_len = match network {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix_len = match prefix {
            None => max_len,
            Some(prefix) => {
                // `u8::from_str` would accept "+8"; a prefix is digits only.
                if prefix.is_empty()
                    || prefix.len() > 3
                    || !prefix.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(format!("{raw:?} has a malformed prefix length"));
                }
                let length: u8 = prefix
                    .parse()
                    .map_err(|_| format!("{raw:?} has a malformed prefix length"))?;
                if length > max_len {
                    return Err(format!("{raw:?} has a prefix length above {max_len}"));
                }
                length
            }
        };
        let block = Self {
            network,
            prefix_len,
        };
        if block.masked(network) != bits(network) {
            return Err(format!(
                "{raw:?} has host bits set beyond its prefix length"
            ));
        }
        Ok(block)
    }

    fn masked(&self, address: IpAddr) -> u128 {
        let width = match address {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let host_bits = u32::from(width - self.prefix_len.min(width));
        let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
        bits(address) & mask
    }

    fn contains(&self, address: IpAddr) -> bool {
        let same_family = matches!(
            (self.network, address),
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_))
        );
        same_family && self.masked(address) == self.masked(self.network)
    }
}

fn bits(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

// ---------------------------------------------------------------------------------------------
// Patterns

/// Text to match, as up to three pieces read as one string, so that a principal
/// (`<proof>:<name>`) is matched without being formatted into a new string.
#[derive(Debug, Clone, Copy)]
struct Text<'a>([&'a str; 3]);

impl Text<'_> {
    fn len(&self) -> usize {
        self.0.iter().map(|piece| piece.len()).sum()
    }

    fn byte(&self, mut index: usize) -> u8 {
        for piece in self.0 {
            if let Some(&byte) = piece.as_bytes().get(index) {
                return byte;
            }
            index -= piece.len();
        }
        0
    }
}

fn is_continuation(byte: u8) -> bool {
    byte & 0b1100_0000 == 0b1000_0000
}

/// The length of the UTF-8 character starting with `lead`.
fn char_width(lead: u8) -> usize {
    match lead {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece {
    Byte(u8),
    /// `?`: one character.
    AnyChar,
}

/// A compiled `*`/`?` pattern: the runs of pieces between the `*`s.
///
/// Matching is greedy and never backtracks: the first run must match at the start, the last at
/// the end, and each run between takes its leftmost match after the previous one. That is exact
/// because each run matches a fixed number of characters, so its leftmost match also ends
/// earliest, leaving the most text to the rest; it costs at most the text's length times the
/// pattern's, whatever the pattern.
#[derive(Debug, Clone)]
struct Pattern {
    runs: Vec<Vec<Piece>>,
    ignore_ascii_case: bool,
}

impl Pattern {
    fn compile(pattern: &str, ignore_ascii_case: bool) -> Self {
        let runs = pattern
            .split('*')
            .map(|run| {
                let mut pieces = Vec::with_capacity(run.len());
                for character in run.chars() {
                    if character == '?' {
                        pieces.push(Piece::AnyChar);
                    } else {
                        let mut buffer = [0; 4];
                        for &byte in character.encode_utf8(&mut buffer).as_bytes() {
                            let byte = if ignore_ascii_case {
                                byte.to_ascii_lowercase()
                            } else {
                                byte
                            };
                            pieces.push(Piece::Byte(byte));
                        }
                    }
                }
                pieces
            })
            .collect();
        Self {
            runs,
            ignore_ascii_case,
        }
    }

    fn same(&self, expected: u8, actual: u8) -> bool {
        if self.ignore_ascii_case {
            expected == actual.to_ascii_lowercase()
        } else {
            expected == actual
        }
    }

    /// Where `run` ends when it starts at `start`, if it matches there.
    fn match_at(
        &self,
        run: &[Piece],
        text: &Text<'_>,
        length: usize,
        start: usize,
    ) -> Option<usize> {
        let mut position = start;
        for piece in run {
            if position >= length {
                return None;
            }
            let byte = text.byte(position);
            match *piece {
                Piece::Byte(expected) => {
                    if !self.same(expected, byte) {
                        return None;
                    }
                    position += 1;
                }
                Piece::AnyChar => position += char_width(byte),
            }
        }
        (position <= length).then_some(position)
    }

    /// Where `run` must start to end exactly at `length`, if it fits after `floor`.
    fn match_ending_at(&self, run: &[Piece], text: &Text<'_>, length: usize, floor: usize) -> bool {
        let mut position = length;
        for piece in run.iter().rev() {
            if position <= floor {
                return false;
            }
            match *piece {
                Piece::Byte(expected) => {
                    position -= 1;
                    if !self.same(expected, text.byte(position)) {
                        return false;
                    }
                }
                Piece::AnyChar => {
                    position -= 1;
                    while position > floor && is_continuation(text.byte(position)) {
                        position -= 1;
                    }
                    if is_continuation(text.byte(position)) {
                        return false;
                    }
                }
            }
        }
        position >= floor
    }

    fn matches(&self, text: &Text<'_>) -> bool {
        let length = text.len();
        let (first, rest) = match self.runs.split_first() {
            Some(split) => split,
            None => return length == 0,
        };
        let Some(mut position) = self.match_at(first, text, length, 0) else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            return position == length;
        };
        for run in middle {
            if run.is_empty() {
                continue;
            }
            let mut start = position;
            loop {
                if start >= length {
                    return false;
                }
                if !is_continuation(text.byte(start))
                    && let Some(end) = self.match_at(run, text, length, start)
                {
                    position = end;
                    break;
                }
                start += 1;
            }
        }
        self.match_ending_at(last, text, length, position)
    }
}

// ---------------------------------------------------------------------------------------------
// The parse: JSON without duplicate keys, then a validation pass that knows where it is.

/// A JSON value whose objects had no duplicate keys (serde_json keeps the last one silently,
/// which would let `{"Effect": "Deny", "Effect": "Allow"}` mean Allow).
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = StrictValue;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Bool(value)))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::from(value)))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::from(value)))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::from(value)))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(value.to_owned())))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(value)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<StrictValue, A::Error> {
        let mut values = Vec::new();
        while let Some(StrictValue(value)) = sequence.next_element()? {
            values.push(value);
        }
        Ok(StrictValue(Value::Array(values)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<StrictValue, A::Error> {
        let mut map = Map::new();
        while let Some(key) = entries.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key {key:?}")));
            }
            let StrictValue(value) = entries.next_value()?;
            map.insert(key, value);
        }
        Ok(StrictValue(Value::Object(map)))
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn object<'v>(value: &'v Value, at: &str) -> Result<&'v Map<String, Value>, PolicyError> {
    value.as_object().ok_or_else(|| {
        PolicyError::at(
            at,
            format_args!("expected an object, found {}", kind(value)),
        )
    })
}

/// Refuses keys outside `known` and returns the value of each of `known` (in its order).
fn fields<'v, const N: usize>(
    map: &'v Map<String, Value>,
    known: [&str; N],
    at: &str,
) -> Result<[Option<&'v Value>; N], PolicyError> {
    if let Some(unknown) = map.keys().find(|key| !known.contains(&key.as_str())) {
        return Err(PolicyError::at(at, format_args!("unknown key {unknown:?}")));
    }
    Ok(known.map(|key| map.get(key)))
}

fn required<'v>(value: Option<&'v Value>, key: &str, at: &str) -> Result<&'v Value, PolicyError> {
    value.ok_or_else(|| PolicyError::at(at, format_args!("missing key {key:?}")))
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

fn version(value: Option<&Value>, at: &str) -> Result<(), PolicyError> {
    let at = join(at, "Version");
    match value {
        Some(Value::String(version)) if version == "1" => Ok(()),
        Some(Value::String(version)) => Err(PolicyError::at(
            &at,
            format_args!("unsupported version {version:?} (expected \"1\")"),
        )),
        Some(other) => Err(PolicyError::at(
            &at,
            format_args!("expected the string \"1\", found {}", kind(other)),
        )),
        None => Err(PolicyError::at(&at, "missing (expected \"1\")")),
    }
}

/// A string or a non-empty array of non-empty strings.
fn strings<'v>(value: &'v Value, at: &str) -> Result<Vec<&'v str>, PolicyError> {
    let list: Vec<&Value> = match value {
        Value::String(_) => vec![value],
        Value::Array(values) => values.iter().collect(),
        other => {
            return Err(PolicyError::at(
                at,
                format_args!(
                    "expected a string or an array of strings, found {}",
                    kind(other)
                ),
            ));
        }
    };
    if list.is_empty() {
        return Err(PolicyError::at(at, "the list is empty"));
    }
    if list.len() > MAX_LIST_ENTRIES {
        return Err(PolicyError::at(
            at,
            format_args!(
                "{} entries, more than the {MAX_LIST_ENTRIES} allowed",
                list.len()
            ),
        ));
    }
    list.into_iter()
        .enumerate()
        .map(|(index, value)| match value {
            Value::String(text) if text.is_empty() => {
                Err(PolicyError::at(&format!("{at}[{index}]"), "empty string"))
            }
            Value::String(text) => Ok(text.as_str()),
            other => Err(PolicyError::at(
                &format!("{at}[{index}]"),
                format_args!("expected a string, found {}", kind(other)),
            )),
        })
        .collect()
}

fn patterns(value: &Value, at: &str, ignore_ascii_case: bool) -> Result<Vec<Pattern>, PolicyError> {
    strings(value, at)?
        .into_iter()
        .map(|text| pattern(text, at, ignore_ascii_case))
        .collect()
}

fn pattern(text: &str, at: &str, ignore_ascii_case: bool) -> Result<Pattern, PolicyError> {
    if text.len() > MAX_PATTERN_BYTES {
        return Err(PolicyError::at(
            at,
            format_args!(
                "a pattern of {} bytes, more than the {MAX_PATTERN_BYTES} allowed",
                text.len()
            ),
        ));
    }
    Ok(Pattern::compile(text, ignore_ascii_case))
}

fn compile(document: &Value) -> Result<PolicySet, PolicyError> {
    let top = object(document, "")?;
    let [version_field, policies_field, attachments_field] =
        fields(top, ["Version", "Policies", "Attachments"], "")?;
    version(version_field, "")?;

    let policies_map = object(required(policies_field, "Policies", "")?, "Policies")?;
    let mut policy_names = Vec::with_capacity(policies_map.len());
    let mut policies = Vec::with_capacity(policies_map.len());
    let mut statement_count = 0;
    for (name, policy) in policies_map {
        let at = format!("Policies.{name}");
        if name.is_empty() {
            return Err(PolicyError::at("Policies", "a policy with an empty name"));
        }
        let policy = object(policy, &at)?;
        let [version_field, statement_field] = fields(policy, ["Version", "Statement"], &at)?;
        version(version_field, &at)?;
        let statement_at = join(&at, "Statement");
        let statements = required(statement_field, "Statement", &at)?
            .as_array()
            .ok_or_else(|| PolicyError::at(&statement_at, "expected an array of statements"))?;
        statement_count += statements.len();
        if statement_count > MAX_STATEMENTS {
            return Err(PolicyError::at(
                &statement_at,
                format_args!("more than {MAX_STATEMENTS} statements in all"),
            ));
        }
        let compiled = statements
            .iter()
            .enumerate()
            .map(|(index, statement)| {
                compile_statement(statement, &format!("{statement_at}[{index}]"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        policy_names.push(name.clone());
        policies.push(compiled);
    }

    let attachments_value = required(attachments_field, "Attachments", "")?;
    let attachment_list = attachments_value.as_array().ok_or_else(|| {
        PolicyError::at(
            "Attachments",
            format_args!("expected an array, found {}", kind(attachments_value)),
        )
    })?;
    if attachment_list.len() > MAX_ATTACHMENTS {
        return Err(PolicyError::at(
            "Attachments",
            format_args!("more than {MAX_ATTACHMENTS} attachments"),
        ));
    }
    let mut attachments = Vec::with_capacity(attachment_list.len());
    for (index, attachment) in attachment_list.iter().enumerate() {
        let at = format!("Attachments[{index}]");
        let attachment = object(attachment, &at)?;
        let [principal_field, policies_field] = fields(attachment, ["Principal", "Policies"], &at)?;
        let principal_at = join(&at, "Principal");
        let principal = match required(principal_field, "Principal", &at)? {
            Value::String(text) if !text.is_empty() => pattern(text, &principal_at, false)?,
            Value::String(_) => return Err(PolicyError::at(&principal_at, "empty string")),
            other => {
                return Err(PolicyError::at(
                    &principal_at,
                    format_args!("expected a string, found {}", kind(other)),
                ));
            }
        };
        let policies_at = join(&at, "Policies");
        let named = strings(required(policies_field, "Policies", &at)?, &policies_at)?;
        let policies = named
            .into_iter()
            .enumerate()
            .map(|(position, name)| {
                policy_names
                    .iter()
                    .position(|known| known == name)
                    .ok_or_else(|| {
                        PolicyError::at(
                            &format!("{policies_at}[{position}]"),
                            format_args!("no policy is named {name:?}"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        attachments.push(Attachment {
            principal,
            policies,
        });
    }

    Ok(PolicySet {
        policies,
        policy_names,
        attachments,
    })
}

fn compile_statement(statement: &Value, at: &str) -> Result<Statement, PolicyError> {
    let statement = object(statement, at)?;
    let [effect_field, action_field, resource_field, condition_field] =
        fields(statement, ["Effect", "Action", "Resource", "Condition"], at)?;
    let effect_at = join(at, "Effect");
    let effect = match required(effect_field, "Effect", at)? {
        Value::String(effect) if effect == "Allow" => Effect::Allow,
        Value::String(effect) if effect == "Deny" => Effect::Deny,
        Value::String(effect) => {
            return Err(PolicyError::at(
                &effect_at,
                format_args!("unknown effect {effect:?} (expected \"Allow\" or \"Deny\")"),
            ));
        }
        other => {
            return Err(PolicyError::at(
                &effect_at,
                format_args!("expected a string, found {}", kind(other)),
            ));
        }
    };
    let actions = patterns(
        required(action_field, "Action", at)?,
        &join(at, "Action"),
        true,
    )?;
    let resources = patterns(
        required(resource_field, "Resource", at)?,
        &join(at, "Resource"),
        false,
    )?;
    let conditions = match condition_field {
        None => Vec::new(),
        Some(condition) => compile_condition(condition, &join(at, "Condition"))?,
    };
    Ok(Statement {
        effect,
        actions,
        resources,
        conditions,
    })
}

fn compile_condition(condition: &Value, at: &str) -> Result<Vec<IpCondition>, PolicyError> {
    let operators = object(condition, at)?;
    if operators.is_empty() {
        return Err(PolicyError::at(at, "no operator"));
    }
    let mut conditions = Vec::with_capacity(operators.len());
    for (operator, keys) in operators {
        let ip_operator = match operator.as_str() {
            "IpAddress" => IpOperator::IpAddress,
            "NotIpAddress" => IpOperator::NotIpAddress,
            other => {
                return Err(PolicyError::at(
                    at,
                    format_args!("unknown operator {other:?}"),
                ));
            }
        };
        let operator_at = join(at, operator);
        let keys = object(keys, &operator_at)?;
        if keys.is_empty() {
            return Err(PolicyError::at(&operator_at, "no condition key"));
        }
        for (key, values) in keys {
            if !key.eq_ignore_ascii_case("acs:SourceIp") {
                return Err(PolicyError::at(
                    &operator_at,
                    format_args!("unknown condition key {key:?} (expected \"acs:SourceIp\")"),
                ));
            }
            let key_at = join(&operator_at, key);
            let blocks = strings(values, &key_at)?
                .into_iter()
                .enumerate()
                .map(|(index, raw)| {
                    IpBlock::parse(raw)
                        .map_err(|message| PolicyError::at(&format!("{key_at}[{index}]"), message))
                })
                .collect::<Result<Vec<_>, _>>()?;
            conditions.push(IpCondition {
                operator: ip_operator,
                blocks,
            });
        }
    }
    Ok(conditions)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use contactd_app::Proof;
    use contactd_domain::AccountId;

    use super::*;

    fn glob(pattern: &str, text: &str) -> bool {
        Pattern::compile(pattern, false).matches(&Text([text, "", ""]))
    }

    /// The obvious recursive matcher, exponential but clearly right, to compare against.
    fn reference(pattern: &[char], text: &[char]) -> bool {
        match pattern.split_first() {
            None => text.is_empty(),
            Some(('*', rest)) => (0..=text.len()).any(|skip| reference(rest, &text[skip..])),
            Some(('?', rest)) => !text.is_empty() && reference(rest, &text[1..]),
            Some((expected, rest)) => text.first() == Some(expected) && reference(rest, &text[1..]),
        }
    }

    #[test]
    fn globs_match_stars_and_question_marks() {
        let cases = [
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "anything at all", true),
            ("**", "", true),
            ("a", "a", true),
            ("a", "A", false),
            ("a", "ab", false),
            ("?", "", false),
            ("?", "é", true),
            ("??", "é", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a*", "a", true),
            ("*a", "ba", true),
            ("*a", "ab", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "abc", true),
            ("a*b*c", "acb", false),
            ("*ab*ab", "abab", true),
            ("*ab*ab", "ab", false),
            ("a*a", "a", false),
            ("a*a", "aa", true),
            ("*?", "", false),
            ("*?", "x", true),
            ("?*?", "x", false),
            ("*é?", "aéb", true),
            ("*é?", "aé", false),
            ("*ü", "aü", true),
            ("*?ü", "ü", false),
            ("*?ü", "éü", true),
            ("messagecontact/*", "messagecontact/c-1", true),
            (
                "acs:resourcemanager:*:*:messagecontact/*",
                "acs:resourcemanager:*:123:messagecontact/c-1",
                true,
            ),
            (
                "acs:resourcemanager:*:*:messagecontact/*",
                "acs:resourcemanager:*:123:resourcedirectory/*",
                false,
            ),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(
                glob(pattern, text),
                expected,
                "{pattern:?} against {text:?}"
            );
        }
    }

    #[test]
    fn globs_agree_with_the_recursive_definition_on_every_small_case() {
        let alphabet = ['a', 'b', 'é'];
        let pattern_alphabet = ['a', 'b', 'é', '*', '?'];
        let words = |letters: &[char], max: usize| {
            let mut all = vec![String::new()];
            let mut frontier = vec![String::new()];
            for _ in 0..max {
                frontier = frontier
                    .iter()
                    .flat_map(|word| letters.iter().map(move |letter| format!("{word}{letter}")))
                    .collect();
                all.extend(frontier.iter().cloned());
            }
            all
        };
        let texts = words(&alphabet, 4);
        for pattern in words(&pattern_alphabet, 4) {
            let pattern_chars: Vec<char> = pattern.chars().collect();
            for text in &texts {
                let text_chars: Vec<char> = text.chars().collect();
                assert_eq!(
                    glob(&pattern, text),
                    reference(&pattern_chars, &text_chars),
                    "{pattern:?} against {text:?}"
                );
            }
        }
    }

    #[test]
    fn pathological_globs_stay_fast() {
        let text = "a".repeat(100_000);
        let pattern = format!("{}b", "*a".repeat(50));
        // Exponential backtracking would not finish; this is at most text × pattern steps.
        assert!(!glob(&pattern, &text));
        assert!(glob(&format!("{}a", "*a".repeat(50)), &text));
        assert!(!glob("*a*a*a*a*b", &text));
        assert!(!glob("*?*?*?*b", &text));
    }

    #[test]
    fn globs_read_text_across_its_pieces() {
        let pattern = Pattern::compile("token:*-svc", false);
        assert!(pattern.matches(&Text(["token", ":", "billing-svc"])));
        assert!(!pattern.matches(&Text(["account", ":", "billing-svc"])));
        assert!(Pattern::compile("t?ken:b*", false).matches(&Text(["token", ":", "b"])));
        assert!(Pattern::compile("*n:b", false).matches(&Text(["token", ":", "b"])));
    }

    #[test]
    fn actions_ignore_ascii_case_but_resources_do_not() {
        let action = Pattern::compile("ResourceManager:get*", true);
        assert!(action.matches(&Text(["resourcemanager:GetMessageContact", "", ""])));
        assert!(action.matches(&Text(["RESOURCEMANAGER:GETX", "", ""])));
        assert!(!glob("Messagecontact/*", "messagecontact/x"));
    }

    const EXAMPLE: &str = r#"{
      "Version": "1",
      "Policies": {
        "ContactsReader": {
          "Version": "1",
          "Statement": [
            {"Effect": "Allow",
             "Action": ["resourcemanager:Get*", "resourcemanager:List*"],
             "Resource": "acs:resourcemanager:*:*:messagecontact/*"},
            {"Effect": "Deny", "Action": "resourcemanager:*", "Resource": "*",
             "Condition": {"NotIpAddress": {"acs:SourceIp": ["10.0.0.0/8", "127.0.0.1"]}}}
          ]
        }
      },
      "Attachments": [
        {"Principal": "token:billing-svc", "Policies": ["ContactsReader"]},
        {"Principal": "account:*", "Policies": ["ContactsReader"]}
      ]
    }"#;

    fn principal(proof: Proof, name: &str) -> Principal {
        Principal {
            account_id: AccountId::parse("1234567890123456").unwrap(),
            name: name.to_owned(),
            proof,
        }
    }

    fn decide(
        set: &PolicySet,
        who: &Principal,
        action: &str,
        resource: &str,
        source: Option<IpAddr>,
    ) -> Decision {
        set.decide(&AccessRequest {
            principal: who,
            action,
            resource,
            source,
        })
    }

    const CONTACT: &str = "acs:resourcemanager:*:1234567890123456:messagecontact/c-1";
    const INSIDE: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)));
    const OUTSIDE: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));

    #[test]
    fn the_documented_example_parses_and_decides() {
        let set = PolicySet::parse(EXAMPLE).unwrap();
        assert_eq!(set.policy_names().collect::<Vec<_>>(), ["ContactsReader"]);
        let billing = principal(Proof::BearerToken, "billing-svc");
        let get = "resourcemanager:GetMessageContact";
        assert_eq!(
            decide(&set, &billing, get, CONTACT, INSIDE),
            Decision::Allow
        );
        assert_eq!(
            decide(
                &set,
                &billing,
                "resourcemanager:UpdateMessageContact",
                CONTACT,
                INSIDE
            ),
            Decision::ImplicitDeny
        );
        assert_eq!(
            decide(&set, &billing, get, CONTACT, OUTSIDE),
            Decision::ExplicitDeny
        );
        let loopback = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(
            decide(&set, &billing, get, CONTACT, loopback),
            Decision::Allow
        );
        let mapped = Some(IpAddr::V6(Ipv4Addr::new(10, 9, 9, 9).to_ipv6_mapped()));
        assert_eq!(
            decide(&set, &billing, get, CONTACT, mapped),
            Decision::Allow
        );
        // Unknown source: the Deny with NotIpAddress still applies.
        assert_eq!(
            decide(&set, &billing, get, CONTACT, None),
            Decision::ExplicitDeny
        );
        let other = principal(Proof::BearerToken, "other-svc");
        assert_eq!(
            decide(&set, &other, get, CONTACT, INSIDE),
            Decision::ImplicitDeny
        );
        let account = Principal::trusted_account(AccountId::parse("1234567890123456").unwrap());
        assert_eq!(
            decide(&set, &account, get, CONTACT, INSIDE),
            Decision::Allow
        );
    }

    fn one_statement(statement: &str) -> PolicySet {
        PolicySet::parse(&format!(
            r#"{{"Version": "1",
                "Policies": {{"P": {{"Version": "1", "Statement": [{statement}]}}}},
                "Attachments": [{{"Principal": "*", "Policies": ["P"]}}]}}"#
        ))
        .unwrap()
    }

    #[test]
    fn an_unknown_source_never_satisfies_an_allow_condition_and_always_a_deny_condition() {
        let anyone = principal(Proof::BearerToken, "x");
        for operator in ["IpAddress", "NotIpAddress"] {
            let allow = one_statement(&format!(
                r#"{{"Effect": "Allow", "Action": "*", "Resource": "*",
                    "Condition": {{"{operator}": {{"acs:SourceIp": "10.0.0.0/8"}}}}}}"#
            ));
            assert_eq!(
                decide(&allow, &anyone, "a", "r", None),
                Decision::ImplicitDeny,
                "{operator}"
            );
            let deny = PolicySet::parse(&format!(
                r#"{{"Version": "1",
                    "Policies": {{"P": {{"Version": "1", "Statement": [
                        {{"Effect": "Allow", "Action": "*", "Resource": "*"}},
                        {{"Effect": "Deny", "Action": "*", "Resource": "*",
                          "Condition": {{"{operator}": {{"acs:SourceIp": "10.0.0.0/8"}}}}}}]}}}},
                    "Attachments": [{{"Principal": "*", "Policies": ["P"]}}]}}"#
            ))
            .unwrap();
            assert_eq!(
                decide(&deny, &anyone, "a", "r", None),
                Decision::ExplicitDeny,
                "{operator}"
            );
        }
    }

    #[test]
    fn conditions_match_ipv4_ipv6_and_blocks_and_combine_operators_with_and() {
        let anyone = principal(Proof::BearerToken, "x");
        let set = one_statement(
            r#"{"Effect": "Allow", "Action": "*", "Resource": "*",
                "Condition": {"IpAddress": {"acs:SourceIp": ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]},
                              "NotIpAddress": {"acs:sourceip": ["10.66.0.0/16", "2001:db8:bad::/48"]}}}"#,
        );
        let v4 = |a, b, c, d| Some(IpAddr::V4(Ipv4Addr::new(a, b, c, d)));
        let v6 = |text: &str| Some(IpAddr::V6(text.parse::<Ipv6Addr>().unwrap()));
        let cases = [
            (v4(10, 0, 0, 1), Decision::Allow),
            (v4(10, 255, 255, 255), Decision::Allow),
            (v4(11, 0, 0, 1), Decision::ImplicitDeny),
            (v4(10, 66, 1, 1), Decision::ImplicitDeny),
            (v4(192, 0, 2, 7), Decision::Allow),
            (v4(192, 0, 2, 8), Decision::ImplicitDeny),
            (v6("2001:db8::1"), Decision::Allow),
            (v6("2001:db8:bad::1"), Decision::ImplicitDeny),
            (v6("2001:db9::1"), Decision::ImplicitDeny),
            (v6("::ffff:10.0.0.1"), Decision::Allow),
            (v6("::ffff:10.66.0.1"), Decision::ImplicitDeny),
            // Not an IPv4-mapped address: an IPv4 block does not hold it.
            (v6("::10.0.0.1"), Decision::ImplicitDeny),
        ];
        for (source, expected) in cases {
            assert_eq!(
                decide(&set, &anyone, "a", "r", source),
                expected,
                "{source:?}"
            );
        }
        let everything = one_statement(
            r#"{"Effect": "Allow", "Action": "*", "Resource": "*",
                "Condition": {"IpAddress": {"acs:SourceIp": ["0.0.0.0/0", "::/0"]}}}"#,
        );
        assert_eq!(
            decide(&everything, &anyone, "a", "r", v4(1, 2, 3, 4)),
            Decision::Allow
        );
        assert_eq!(
            decide(&everything, &anyone, "a", "r", v6("::1")),
            Decision::Allow
        );
    }

    #[test]
    fn ip_blocks_are_parsed_strictly() {
        assert!(IpBlock::parse("10.0.0.0/8").is_ok());
        assert!(IpBlock::parse("10.0.0.1").is_ok());
        assert!(IpBlock::parse("::/0").is_ok());
        assert!(IpBlock::parse("2001:db8::/128").is_ok());
        assert!(IpBlock::parse("2001:db8::1/32").is_err());
        assert!(IpBlock::parse("2001:db8::/32").is_ok());
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
            "10.0.0.0/08x",
            "10.0.0/8",
            "10.1.0.0/8",
            "::/129",
            "localhost",
            "",
            "10.0.0.0/8/8",
            " 10.0.0.1",
        ] {
            assert!(IpBlock::parse(bad).is_err(), "{bad:?}");
        }
    }

    fn error(json: &str) -> String {
        PolicySet::parse(json).unwrap_err().to_string()
    }

    fn with_statement(statement: &str) -> String {
        format!(
            r#"{{"Version": "1",
                "Policies": {{"P": {{"Version": "1", "Statement": [
                    {{"Effect": "Allow", "Action": "*", "Resource": "*"}}, {statement}]}}}},
                "Attachments": []}}"#
        )
    }

    #[test]
    fn what_is_not_understood_is_refused_with_where() {
        let cases = [
            (with_statement(r#"{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"StringEquals": {"acs:SourceIp": "1.2.3.4"}}}"#),
             r#"Policies.P.Statement[1].Condition: unknown operator "StringEquals""#),
            (with_statement(r#"{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"IpAddress": {"acs:CurrentTime": "1"}}}"#),
             r#"Policies.P.Statement[1].Condition.IpAddress: unknown condition key "acs:CurrentTime" (expected "acs:SourceIp")"#),
            (with_statement(r#"{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"IpAddress": {"acs:SourceIp": ["1.2.3.4", "1.2.3.0/33"]}}}"#),
             r#"Policies.P.Statement[1].Condition.IpAddress.acs:SourceIp[1]: "1.2.3.0/33" has a prefix length above 32"#),
            (with_statement(r#"{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"IpAddress": {"acs:SourceIp": []}}}"#),
             "Policies.P.Statement[1].Condition.IpAddress.acs:SourceIp: the list is empty"),
            (with_statement(r#"{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {}}"#),
             "Policies.P.Statement[1].Condition: no operator"),
            (with_statement(r#"{"Effect": "allow", "Action": "*", "Resource": "*"}"#),
             r#"Policies.P.Statement[1].Effect: unknown effect "allow" (expected "Allow" or "Deny")"#),
            (with_statement(r#"{"Effect": "Allow", "Action": [], "Resource": "*"}"#),
             "Policies.P.Statement[1].Action: the list is empty"),
            (with_statement(r#"{"Effect": "Allow", "Action": ["a", 1], "Resource": "*"}"#),
             "Policies.P.Statement[1].Action[1]: expected a string, found a number"),
            (with_statement(r#"{"Effect": "Allow", "Action": ["a", ""], "Resource": "*"}"#),
             "Policies.P.Statement[1].Action[1]: empty string"),
            (with_statement(r#"{"Effect": "Allow", "Action": "*"}"#),
             r#"Policies.P.Statement[1]: missing key "Resource""#),
            (with_statement(r#"{"Effect": "Allow", "NotAction": "x", "Action": "*", "Resource": "*"}"#),
             r#"Policies.P.Statement[1]: unknown key "NotAction""#),
            (with_statement(r#""Allow""#),
             "Policies.P.Statement[1]: expected an object, found a string"),
            (r#"{"Version": "2", "Policies": {}, "Attachments": []}"#.to_owned(),
             r#"Version: unsupported version "2" (expected "1")"#),
            (r#"{"Version": 1, "Policies": {}, "Attachments": []}"#.to_owned(),
             r#"Version: expected the string "1", found a number"#),
            (r#"{"Policies": {}, "Attachments": []}"#.to_owned(),
             r#"Version: missing (expected "1")"#),
            (r#"{"Version": "1", "Attachments": []}"#.to_owned(),
             r#"missing key "Policies""#),
            (r#"{"Version": "1", "Policies": {}, "Attachments": [], "Extra": 1}"#.to_owned(),
             r#"unknown key "Extra""#),
            (r#"{"Version": "1", "Policies": {"P": {"Version": "1", "Statement": []}}, "Attachments": [{"Principal": "*", "Policies": ["Q"]}]}"#.to_owned(),
             r#"Attachments[0].Policies[0]: no policy is named "Q""#),
            (r#"{"Version": "1", "Policies": {"P": {"Version": "1", "Statement": []}}, "Attachments": [{"Principal": "*", "Policies": []}]}"#.to_owned(),
             "Attachments[0].Policies: the list is empty"),
            (r#"{"Version": "1", "Policies": {}, "Attachments": [{"Principal": ["*"], "Policies": ["P"]}]}"#.to_owned(),
             "Attachments[0].Principal: expected a string, found an array"),
            (r#"{"Version": "1", "Policies": {"P": {"Statement": []}}, "Attachments": []}"#.to_owned(),
             r#"Policies.P.Version: missing (expected "1")"#),
            (r#"{"Version": "1", "Policies": {"P": {"Version": "1", "Statement": {}}}, "Attachments": []}"#.to_owned(),
             "Policies.P.Statement: expected an array of statements"),
            (r#"[]"#.to_owned(), "expected an object, found an array"),
        ];
        for (json, expected) in cases {
            assert_eq!(error(&json), expected, "{json}");
        }
    }

    #[test]
    fn duplicate_keys_and_bad_json_are_refused() {
        let duplicate = with_statement(
            r#"{"Effect": "Deny", "Action": "*", "Resource": "*", "Effect": "Allow"}"#,
        );
        let message = error(&duplicate);
        assert!(message.contains(r#"duplicate key "Effect""#), "{message}");
        assert!(message.contains("line"), "{message}");
        assert!(error("{").starts_with("not valid JSON: "));
        assert!(error("").starts_with("not valid JSON: "));
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(error(&deep).starts_with("not valid JSON: "));
    }

    #[test]
    fn oversized_files_and_absurd_counts_are_refused() {
        let huge = format!(
            "{{\"Version\": \"1\", \"x\": \"{}\"}}",
            "a".repeat(MAX_POLICY_FILE_BYTES)
        );
        assert!(error(&huge).contains("more than the 1048576 allowed"));
        let statement = r#"{"Effect":"Allow","Action":"*","Resource":"*"},"#;
        let many = format!(
            r#"{{"Version":"1","Policies":{{"P":{{"Version":"1","Statement":[{}{}]}}}},"Attachments":[]}}"#,
            statement.repeat(MAX_STATEMENTS),
            statement.trim_end_matches(',')
        );
        assert!(many.len() < MAX_POLICY_FILE_BYTES);
        assert_eq!(
            error(&many),
            "Policies.P.Statement: more than 10000 statements in all"
        );
        let long_pattern = with_statement(&format!(
            r#"{{"Effect": "Allow", "Action": "{}", "Resource": "*"}}"#,
            "a".repeat(MAX_PATTERN_BYTES + 1)
        ));
        assert!(
            error(&long_pattern)
                .starts_with("Policies.P.Statement[1].Action: a pattern of 1025 bytes")
        );
    }

    #[test]
    fn an_explicit_deny_wins_over_an_allow_in_any_order_and_any_attachment() {
        let set = PolicySet::parse(
            r#"{"Version": "1",
                "Policies": {
                  "Allow": {"Version": "1", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]},
                  "NoDelete": {"Version": "1", "Statement": [
                    {"Effect": "Deny", "Action": "resourcemanager:Delete*", "Resource": "*"}]}
                },
                "Attachments": [
                  {"Principal": "token:*", "Policies": ["Allow"]},
                  {"Principal": "token:intern-*", "Policies": ["NoDelete"]}
                ]}"#,
        )
        .unwrap();
        let intern = principal(Proof::BearerToken, "intern-1");
        let senior = principal(Proof::BearerToken, "senior");
        let certificate = principal(Proof::ClientCertificate, "intern-1");
        let delete = "resourcemanager:DeleteMessageContact";
        assert_eq!(
            decide(&set, &intern, delete, CONTACT, None),
            Decision::ExplicitDeny
        );
        assert_eq!(
            decide(
                &set,
                &intern,
                "resourcemanager:GetMessageContact",
                CONTACT,
                None
            ),
            Decision::Allow
        );
        assert_eq!(
            decide(&set, &senior, delete, CONTACT, None),
            Decision::Allow
        );
        assert_eq!(
            decide(&set, &certificate, delete, CONTACT, None),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn an_empty_policy_file_denies_everything() {
        let set =
            PolicySet::parse(r#"{"Version": "1", "Policies": {}, "Attachments": []}"#).unwrap();
        let anyone = principal(Proof::TrustedHeader, "1234567890123456");
        assert_eq!(
            decide(
                &set,
                &anyone,
                "resourcemanager:GetMessageContact",
                CONTACT,
                None
            ),
            Decision::ImplicitDeny
        );
    }
}
