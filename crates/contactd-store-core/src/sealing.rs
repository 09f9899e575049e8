//! Personal data in the event log, sealed (ADR 13). Each contact has a data key of its own,
//! kept wrapped by a master key in the store's `contact_keys` table. The personal fields of
//! its events (name, email address, phone number, verification targets) are stored sealed
//! with AES-256-GCM: a fresh nonce per field, the event id and the field's name as associated
//! data, so that a ciphertext moved to another event or field, or changed by a single byte,
//! does not open. Destroying the data key (forgetting) leaves the events in place and their
//! personal fields unreadable for good: they read as redacted.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use contactd_app::StoreError;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::Value;
use uuid::Uuid;

const KEY_BYTES: usize = 32;
const TAG_BYTES: usize = 16;

/// What a personal field reads as once its contact's key is destroyed. No name, address or
/// number can be written so: the contract's rules refuse brackets in all three.
pub const REDACTED: &str = "[redacted]";

/// Each event type that names a person, with the schema version its clear form is written
/// at today and its personal fields.
const PERSONAL: &[(&str, i32, &[&str])] = &[
    (
        "MessageContactAdded",
        2,
        &["name", "email_address", "phone_number"],
    ),
    ("MessageContactRenamed", 1, &["name"]),
    ("EmailAddressChangeRequested", 1, &["email_address"]),
    ("PhoneNumberChangeRequested", 1, &["phone_number"]),
    ("EmailVerificationRequested", 1, &["email_address"]),
    ("PhoneVerificationRequested", 1, &["phone_number"]),
    ("EmailAddressVerified", 1, &["email_address"]),
    ("PhoneNumberVerified", 1, &["phone_number"]),
    ("EmailAddressChangeCancelled", 1, &["email_address"]),
    ("PhoneNumberChangeCancelled", 1, &["phone_number"]),
];

/// A payload of schema version `v` sealed is stored at version `v + SEALED`: sealing changes
/// no field's name or shape, so every clear version (an old one too) has its sealed twin, and
/// opening gives back exactly the clear payload, which the upcasters then read as before.
const SEALED: i32 = 100;

fn personal(event_type: &str) -> Option<(i32, &'static [&'static str])> {
    PERSONAL
        .iter()
        .find(|(t, ..)| *t == event_type)
        .map(|(_, clear, fields)| (*clear, *fields))
}

/// Whether events of this type name a person (and so are written sealed).
pub fn names_a_person(event_type: &str) -> bool {
    personal(event_type).is_some()
}

/// Whether an event stored at this schema version is sealed (and needs its contact's key to
/// be read).
pub fn is_sealed(event_type: &str, schema_version: i32) -> bool {
    personal(event_type).is_some_and(|(clear, _)| (1..=clear).contains(&(schema_version - SEALED)))
}

/// Whether an event stored at this schema version names a person in clear (stored before
/// sealing began): what `events encrypt` and forgetting seal in place.
pub fn is_clear_personal(event_type: &str, schema_version: i32) -> bool {
    personal(event_type).is_some_and(|(clear, _)| (1..=clear).contains(&schema_version))
}

/// Every `(event type, clear version, sealed version)` that sealing an event in place may
/// move it between: what the stores' append-only guard lets through, and nothing else.
pub fn sealing_moves() -> impl Iterator<Item = (&'static str, i32, i32)> {
    PERSONAL
        .iter()
        .flat_map(|(t, clear, _)| (1..=*clear).map(move |from| (*t, from, from + SEALED)))
}

/// A failure to seal or open: the key or the ciphertext is not what it was written as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("a sealed value does not open under its key: it was changed or moved")]
    Tampered,
    #[error("the data key is wrapped by master key {0}, which this process was not given")]
    UnknownMasterKey(String),
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    // The system's generator failing is the machine failing: nothing sensible remains.
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random generator failed");
    bytes
}

fn aead_key(bytes: &[u8; KEY_BYTES]) -> LessSafeKey {
    // A 32-byte key is always a valid AES-256 key.
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).expect("a 32-byte AES-256 key"))
}

/// Seals `plaintext` under `key` with `aad`: nonce, ciphertext and tag, in that order.
fn seal_bytes(key: &LessSafeKey, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let nonce = random::<NONCE_LEN>();
    let mut in_out = plaintext.to_vec();
    in_out.reserve(TAG_BYTES);
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut in_out,
    )
    .expect("sealing within AES-GCM's length limit");
    let mut sealed = nonce.to_vec();
    sealed.extend_from_slice(&in_out);
    sealed
}

fn open_bytes(key: &LessSafeKey, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    if sealed.len() < NONCE_LEN + TAG_BYTES {
        return Err(SealError::Tampered);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Tampered)?;
    let mut in_out = ciphertext.to_vec();
    let opened = key
        .open_in_place(nonce, Aad::from(aad), &mut in_out)
        .map_err(|_| SealError::Tampered)?;
    Ok(opened.to_vec())
}

/// The key that wraps every data key, from `--master-key-file`. Its id (a digest of the key)
/// is stored beside each data key it wraps, so that a rotation knows what to rewrap.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    /// The key prepared once (its schedule and tables), not at every wrap.
    key: LessSafeKey,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    /// Reads a master key file: 64 hexadecimal digits (32 bytes), whitespace around them
    /// ignored.
    pub fn from_file_text(text: &str) -> Result<Self, String> {
        let digits = text.trim();
        if digits.len() != KEY_BYTES * 2 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "a master key file holds {} hexadecimal digits (32 bytes), nothing else",
                KEY_BYTES * 2
            ));
        }
        let mut key = [0; KEY_BYTES];
        for (byte, pair) in key.iter_mut().zip(digits.as_bytes().chunks(2)) {
            // Two hexadecimal digits, checked above.
            *byte = u8::from_str_radix(std::str::from_utf8(pair).unwrap_or("00"), 16)
                .unwrap_or_default();
        }
        Ok(Self::from_bytes(key))
    }

    /// A new random master key, and the text of its file.
    pub fn generate() -> (Self, String) {
        let key = random::<KEY_BYTES>();
        let text: String = key.iter().map(|b| format!("{b:02x}")).collect();
        (Self::from_bytes(key), format!("{text}\n"))
    }

    fn from_bytes(key: [u8; KEY_BYTES]) -> Self {
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            &[b"contactd master key id\0".as_slice(), &key].concat(),
        );
        let id = digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self {
            id,
            key: aead_key(&key),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A data key as stored: sealed by a master key, with the contact's id as associated data so
/// that it cannot be moved to another contact's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub master_key_id: String,
    pub bytes: Vec<u8>,
}

/// The master keys a process holds: the current one wraps every new data key, the previous
/// ones (during a rotation) still unwrap the data keys not yet rewrapped.
#[derive(Debug, Clone)]
pub struct Keyring {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

fn wrapping_aad(contact_id: &str) -> Vec<u8> {
    [b"contactd data key\0".as_slice(), contact_id.as_bytes()].concat()
}

impl Keyring {
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Self {
        Self { current, previous }
    }

    /// A keyring of one fixed master key, for tests only: never for data worth protecting.
    pub fn for_tests() -> Self {
        Self::new(MasterKey::from_bytes([7; KEY_BYTES]), Vec::new())
    }

    pub fn current_id(&self) -> &str {
        self.current.id()
    }

    /// A fresh data key for the contact, and the form it is stored in.
    pub fn new_data_key(&self, contact_id: &str) -> (DataKey, WrappedKey) {
        let key = DataKey::from_bytes(random::<KEY_BYTES>());
        let wrapped = self.wrap(contact_id, &key);
        (key, wrapped)
    }

    fn wrap(&self, contact_id: &str, key: &DataKey) -> WrappedKey {
        WrappedKey {
            master_key_id: self.current.id.clone(),
            bytes: seal_bytes(&self.current.key, &wrapping_aad(contact_id), &key.bytes),
        }
    }

    /// The contact's data key, from its stored form.
    pub fn unwrap(&self, contact_id: &str, wrapped: &WrappedKey) -> Result<DataKey, SealError> {
        let master = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|m| m.id == wrapped.master_key_id)
            .ok_or_else(|| SealError::UnknownMasterKey(wrapped.master_key_id.clone()))?;
        let bytes = open_bytes(&master.key, &wrapping_aad(contact_id), &wrapped.bytes)?;
        let key: [u8; KEY_BYTES] = bytes.try_into().map_err(|_| SealError::Tampered)?;
        Ok(DataKey::from_bytes(key))
    }

    /// The data key wrapped again under the current master key (a rotation); `None` if it is
    /// wrapped under the current one already.
    pub fn rewrap(
        &self,
        contact_id: &str,
        wrapped: &WrappedKey,
    ) -> Result<Option<WrappedKey>, SealError> {
        if wrapped.master_key_id == self.current.id {
            return Ok(None);
        }
        let key = self.unwrap(contact_id, wrapped)?;
        Ok(Some(self.wrap(contact_id, &key)))
    }
}

/// One contact's data key, in the clear: held in memory only. Its 32 bytes alone: prepared
/// for AES at each use (a fraction of a microsecond) rather than kept prepared, which would
/// cost every key the process remembers some 600 bytes more.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey {
    bytes: [u8; KEY_BYTES],
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

fn field_aad(event_id: Uuid, field: &str) -> Vec<u8> {
    [event_id.as_bytes().as_slice(), b"\0", field.as_bytes()].concat()
}

impl DataKey {
    fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        Self { bytes }
    }

    /// A field's value sealed for the event `event_id`, as base64 text.
    pub fn seal(&self, event_id: Uuid, field: &str, plaintext: &str) -> String {
        STANDARD_NO_PAD.encode(seal_bytes(
            &aead_key(&self.bytes),
            &field_aad(event_id, field),
            plaintext.as_bytes(),
        ))
    }

    /// A sealed field's value; `Tampered` if it was changed, or sealed for another event,
    /// field or key.
    pub fn open(&self, event_id: Uuid, field: &str, sealed: &str) -> Result<String, SealError> {
        let bytes = STANDARD_NO_PAD
            .decode(sealed)
            .map_err(|_| SealError::Tampered)?;
        let opened = open_bytes(&aead_key(&self.bytes), &field_aad(event_id, field), &bytes)?;
        String::from_utf8(opened).map_err(|_| SealError::Tampered)
    }
}

/// What a reader holds of a contact's key.
#[derive(Debug, Clone)]
pub enum KeyState {
    Present(DataKey),
    /// Forgotten: every sealed field reads as [`REDACTED`].
    Destroyed,
    /// Not opened for this reader (see [`contactd_app::Opened`]): its sealed fields read as
    /// [`REDACTED`] too.
    Unopened,
}

static UNOPENED: KeyState = KeyState::Unopened;

/// A data key's row as either store selects it: `wrapped_key` and `master_key_id` are null
/// once the key is destroyed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyRow {
    pub contact_id: String,
    pub master_key_id: Option<String>,
    pub wrapped_key: Option<Vec<u8>>,
}

/// The keys a batch of stored events needs to be read, by contact; with `rest_unopened`, a
/// contact without one reads as not opened rather than as an error (a reader that opens only
/// some events).
#[derive(Debug, Default)]
pub struct OpenKeys {
    keys: HashMap<String, KeyState>,
    rest_unopened: bool,
}

impl OpenKeys {
    /// Unwraps the rows a store selected. A key that does not unwrap is refused here, before
    /// any event is read with it.
    pub fn unwrap_rows(keyring: &Keyring, rows: Vec<KeyRow>) -> Result<Self, StoreError> {
        rows.into_iter()
            .map(|row| {
                let state = match (row.master_key_id, row.wrapped_key) {
                    (Some(master_key_id), Some(bytes)) => KeyState::Present(
                        keyring
                            .unwrap(
                                &row.contact_id,
                                &WrappedKey {
                                    master_key_id,
                                    bytes,
                                },
                            )
                            .map_err(|e| key_error(&row.contact_id, e))?,
                    ),
                    _ => KeyState::Destroyed,
                };
                Ok((row.contact_id, state))
            })
            .collect::<Result<_, StoreError>>()
            .map(|keys| Self {
                keys,
                rest_unopened: false,
            })
    }

    /// For a reader that opens only the events `opened` names: the contacts it fetched no key
    /// for read as not opened.
    pub fn for_reader(mut self, opened: contactd_app::Opened) -> Self {
        self.rest_unopened = opened != contactd_app::Opened::All;
        self
    }

    pub fn get(&self, contact_id: &str) -> Option<&KeyState> {
        self.keys
            .get(contact_id)
            .or(self.rest_unopened.then_some(&UNOPENED))
    }
}

fn key_error(contact_id: &str, error: SealError) -> StoreError {
    StoreError::internal(
        format!("the data key of contact {contact_id} does not unwrap: {error}"),
        None,
    )
}

/// Seals the personal fields of a payload stored in clear: the schema version it is then
/// stored at. Other payloads are left as they are.
pub fn seal_payload(
    event_type: &str,
    schema_version: i32,
    payload: &mut Value,
    event_id: Uuid,
    key: &DataKey,
) -> i32 {
    let Some((_, fields)) = personal(event_type) else {
        return schema_version;
    };
    if !is_clear_personal(event_type, schema_version) {
        return schema_version;
    }
    for field in fields {
        if let Some(value) = payload.get_mut(*field)
            && let Value::String(text) = value
        {
            *text = key.seal(event_id, field, text);
        }
    }
    schema_version + SEALED
}

/// Opens the personal fields of a sealed payload in place, or marks them [`REDACTED`] when
/// the key is destroyed: the clear version it then reads as. Payloads stored in clear are
/// left as they are.
pub fn open_payload(
    event_type: &str,
    schema_version: i32,
    payload: &mut Value,
    event_id: Uuid,
    key: Option<&KeyState>,
) -> Result<i32, StoreError> {
    let Some((_, fields)) = personal(event_type) else {
        return Ok(schema_version);
    };
    if !is_sealed(event_type, schema_version) {
        return Ok(schema_version);
    }
    let refused = |what: String| {
        StoreError::internal(
            format!("event {event_id} ({event_type}) is unreadable: {what}"),
            None,
        )
    };
    let key = key.ok_or_else(|| refused("its contact has no data key".to_owned()))?;
    for field in fields {
        if let Some(value) = payload.get_mut(*field)
            && let Value::String(text) = value
        {
            *text = match key {
                KeyState::Present(key) => key
                    .open(event_id, field, text)
                    .map_err(|e| refused(format!("field {field}: {e}")))?,
                KeyState::Destroyed | KeyState::Unopened => REDACTED.to_owned(),
            };
        }
    }
    Ok(schema_version - SEALED)
}

/// What a rotation did: data keys rewrapped under the current master key, and those that were
/// under it already.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyRotation {
    pub rewrapped: u64,
    pub current: u64,
}

/// What sealing the clear events in place did: how many events it sealed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventSealing {
    pub sealed: u64,
}

/// The data keys this process wrote with lately, so that an update that names a person seals
/// without reading its key first. Only writes use it: a key destroyed by another process may
/// linger here, but the forgotten contact's stream takes no more events (its version moved
/// on), and every read of the log takes the keys from the table.
#[derive(Debug)]
pub struct KeyCache {
    capacity: usize,
    keys: Mutex<(HashMap<String, DataKey>, VecDeque<String>)>,
}

impl KeyCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            keys: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    pub fn get(&self, contact_id: &str) -> Option<DataKey> {
        self.lock().0.get(contact_id).cloned()
    }

    /// Remembers the contact's key. A contact's key never changes (a destroyed one is
    /// evicted), so one already here is left as it is: an update that sealed with the cached
    /// key costs no allocation.
    pub fn insert(&self, contact_id: &str, key: DataKey) {
        let mut guard = self.lock();
        let (keys, order) = &mut *guard;
        if keys.contains_key(contact_id) {
            return;
        }
        keys.insert(contact_id.to_owned(), key);
        order.push_back(contact_id.to_owned());
        while order.len() > self.capacity {
            if let Some(oldest) = order.pop_front() {
                keys.remove(&oldest);
            }
        }
    }

    pub fn evict(&self, contact_id: &str) {
        let mut guard = self.lock();
        let (keys, order) = &mut *guard;
        if keys.remove(contact_id).is_some() {
            order.retain(|id| id != contact_id);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (HashMap<String, DataKey>, VecDeque<String>)> {
        // A panic while holding this lock leaves a map that is still whole.
        self.keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_opens_only_under_its_key_event_and_name() {
        let keyring = Keyring::for_tests();
        let (key, _) = keyring.new_data_key("c-1");
        let (other, _) = keyring.new_data_key("c-2");
        let event = Uuid::now_v7();
        let sealed = key.seal(event, "name", "Tom");
        assert_ne!(
            sealed,
            key.seal(event, "name", "Tom"),
            "a fresh nonce each time"
        );
        assert_eq!(key.open(event, "name", &sealed).unwrap(), "Tom");
        assert_eq!(other.open(event, "name", &sealed), Err(SealError::Tampered));
        assert_eq!(
            key.open(Uuid::now_v7(), "name", &sealed),
            Err(SealError::Tampered)
        );
        assert_eq!(
            key.open(event, "email_address", &sealed),
            Err(SealError::Tampered)
        );
        let mut bytes = STANDARD_NO_PAD.decode(&sealed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(
            key.open(event, "name", &STANDARD_NO_PAD.encode(bytes)),
            Err(SealError::Tampered)
        );
    }

    #[test]
    fn a_data_key_unwraps_under_its_contact_and_a_known_master_key_only() {
        let (old, _) = MasterKey::generate();
        let (new, text) = MasterKey::generate();
        assert_eq!(MasterKey::from_file_text(&text).unwrap().id(), new.id());
        let before = Keyring::new(old.clone(), Vec::new());
        let (key, wrapped) = before.new_data_key("c-1");
        assert_eq!(before.unwrap("c-1", &wrapped).unwrap(), key);
        assert_eq!(before.unwrap("c-2", &wrapped), Err(SealError::Tampered));
        let rotating = Keyring::new(new.clone(), vec![old]);
        let rewrapped = rotating.rewrap("c-1", &wrapped).unwrap().unwrap();
        assert_eq!(rewrapped.master_key_id, new.id());
        assert_eq!(rotating.rewrap("c-1", &rewrapped).unwrap(), None);
        let after = Keyring::new(new, Vec::new());
        assert_eq!(after.unwrap("c-1", &rewrapped).unwrap(), key);
        assert!(matches!(
            after.unwrap("c-1", &wrapped),
            Err(SealError::UnknownMasterKey(_))
        ));
    }

    #[test]
    fn a_master_key_file_is_64_hex_digits() {
        assert!(MasterKey::from_file_text(&"ab".repeat(32)).is_ok());
        assert!(MasterKey::from_file_text(&format!("  {}\n", "0F".repeat(32))).is_ok());
        assert!(MasterKey::from_file_text(&"ab".repeat(31)).is_err());
        assert!(MasterKey::from_file_text(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn a_reader_that_opens_some_events_reads_the_others_redacted_without_a_key() {
        use contactd_app::Opened;
        let keys = OpenKeys::default().for_reader(Opened::Only(&["EmailVerificationRequested"]));
        assert!(matches!(keys.get("c-1"), Some(KeyState::Unopened)));
        let (key, _) = Keyring::for_tests().new_data_key("c-1");
        let event = Uuid::now_v7();
        let mut payload = serde_json::json!({"name": "Tom"});
        let version = seal_payload("MessageContactRenamed", 1, &mut payload, event, &key);
        open_payload(
            "MessageContactRenamed",
            version,
            &mut payload,
            event,
            keys.get("c-1"),
        )
        .unwrap();
        assert_eq!(payload["name"], REDACTED);
        assert!(
            OpenKeys::default()
                .for_reader(Opened::All)
                .get("c-1")
                .is_none(),
            "a reader of everything finds no key missing silently"
        );
    }

    #[test]
    fn a_payload_seals_and_opens_or_reads_redacted() {
        let (key, _) = Keyring::for_tests().new_data_key("c-1");
        let event = Uuid::now_v7();
        let clear = serde_json::json!({"contact_id": "c-1", "name": "Tom", "email_address": "a@b.cn", "phone_number": null, "title": "CEO", "message_types": []});
        let mut payload = clear.clone();
        let version = seal_payload("MessageContactAdded", 2, &mut payload, event, &key);
        assert_eq!(version, 102);
        assert_ne!(payload["name"], clear["name"]);
        assert_eq!(payload["title"], clear["title"]);
        assert!(payload["phone_number"].is_null());
        let mut opened = payload.clone();
        let present = KeyState::Present(key);
        assert_eq!(
            open_payload(
                "MessageContactAdded",
                102,
                &mut opened,
                event,
                Some(&present)
            )
            .unwrap(),
            2
        );
        assert_eq!(opened, clear);
        let mut redacted = payload.clone();
        open_payload(
            "MessageContactAdded",
            102,
            &mut redacted,
            event,
            Some(&KeyState::Destroyed),
        )
        .unwrap();
        assert_eq!(redacted["name"], REDACTED);
        assert_eq!(redacted["email_address"], REDACTED);
        assert!(
            open_payload(
                "MessageContactAdded",
                102,
                &mut payload,
                Uuid::now_v7(),
                Some(&present)
            )
            .is_err()
        );
        let (key, _) = Keyring::for_tests().new_data_key("c-1");
        let mut old = serde_json::json!({"name": "Tom", "account_id": "1"});
        assert_eq!(
            seal_payload("MessageContactAdded", 1, &mut old, event, &key),
            101
        );
        assert_eq!(old["account_id"], "1", "an old shape is sealed as it is");
        assert_ne!(old["name"], "Tom");
    }
}
