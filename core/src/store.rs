//! The persistent outbox (`outbox_path`): the outbox's messages and the session's resume state
//! in one file, so a process that is killed and started again with the same path resumes its
//! session (`docs/PERSISTENCE.md`).
//!
//! **Why an append-only log of our own** rather than SQLite or redb: what is stored is a FIFO
//! whose entries are written once and removed once, which is exactly an append-only log; a
//! send costs one `write` of one record (no page updates, no B-tree), the file format and
//! its recovery rules fit on a page and are tested here, and no C library or large crate
//! joins the dependency tree of every binding. Compaction rewrites the live records into a
//! new file and renames it over the old one, so the file is always either the old log or the
//! new one.
//!
//! **Format.** A 16-byte header (`TETHEROB`, format version `u32` LE, 4 reserved bytes), then
//! records: `len: u32 LE | crc32(body): u32 LE | body`, body = `type: u8` and fields (integers
//! little-endian, strings with a length prefix):
//!
//! | type | record | fields |
//! |---|---|---|
//! | 1 | meta (first record) | mode `u8` (0 raw, 1 envelope), next id `u64`, sid `u16`+bytes, epoch `u8`+bytes |
//! | 2 | accepted | id `u64`, kind `u8` (0 text, 1 binary), payload (the rest) |
//! | 3 | done | id `u64`: delivered (acked, or flushed in raw mode) or failed for good |
//! | 4 | server position | last server id delivered `u64`, server epoch `u8`+bytes (empty: none) |
//!
//! **Durability.** Every record is written to the file (one `write`) before the call that made
//! it returns, so a killed *process* loses nothing whatever [`OutboxSync`] says: the kernel
//! holds the data. [`OutboxSync`] decides what survives a crash of the *machine* (power loss).
//!
//! **Recovery.** A torn last record (the process stopped inside its `write`, or the machine
//! lost power before the data reached the disk) is cut off and logged: the call writing it
//! had not returned, so nothing it reported as accepted is lost. Any other damage, a file
//! that is not an outbox, one from a newer format, one of another session or mode, or a file
//! another live client holds, is refused with a [`StoreError`] naming the file: the client
//! does not start, and the file is left untouched for the application to decide.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::config::OutboxSync;
use crate::event::MessageId;
use crate::outbox::Payload;

const MAGIC: &[u8; 8] = b"TETHEROB";
/// The format version this code writes and reads.
const FORMAT: u32 = 1;
const HEADER_LEN: u64 = 16;
/// The largest record a file may hold (a message is at most `max_message_size`, which the
/// config caps well below this): a larger length is damage, not a record.
const MAX_RECORD: u32 = 1 << 30;

const META: u8 = 1;
const ACCEPTED: u8 = 2;
const DONE: u8 = 3;
const SERVER: u8 = 4;

/// Compaction runs when the file is over this size and mostly dead records.
const COMPACT_MIN_BYTES: u64 = 1 << 20;

/// Why the outbox file could not be opened, read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file system refused an operation.
    #[error("outbox file {path}: could not {op}: {error}")]
    Io {
        /// The outbox file.
        path: PathBuf,
        /// What was being done ("open", "read", "append to", ...).
        op: &'static str,
        /// The operating system's message.
        error: String,
    },
    /// The file exists but is not a Tether outbox file.
    #[error("outbox file {path} is not a Tether outbox file (no TETHEROB header)")]
    NotAnOutbox {
        /// The outbox file.
        path: PathBuf,
    },
    /// The file was written by a newer Tether in a format this version cannot read.
    #[error("outbox file {path} has format version {version}; this Tether reads version {FORMAT}: use a newer Tether or another path")]
    NewerFormat {
        /// The outbox file.
        path: PathBuf,
        /// The format version found.
        version: u32,
    },
    /// A record before the end of the file is damaged (only the last one may be torn).
    #[error("outbox file {path} is damaged at byte {offset}: {why}; it was left as it is")]
    Corrupt {
        /// The outbox file.
        path: PathBuf,
        /// Where the damaged record starts.
        offset: u64,
        /// What is wrong with it.
        why: String,
    },
    /// The file belongs to another session than the configured `session_id`.
    #[error("outbox file {path} belongs to session {found:?}, not the configured session_id {configured:?}")]
    OtherSession {
        /// The outbox file.
        path: PathBuf,
        /// The session id in the file.
        found: String,
        /// The configured one.
        configured: String,
    },
    /// The file was written in another protocol mode.
    #[error(
        "outbox file {path} was written in {found} mode, but this client runs in {configured} mode"
    )]
    OtherMode {
        /// The outbox file.
        path: PathBuf,
        /// "raw" or "envelope".
        found: &'static str,
        /// "raw" or "envelope".
        configured: &'static str,
    },
    /// Another live client (in this process or another) has the file open.
    #[error("outbox file {path} is in use by another client (one file per live client)")]
    InUse {
        /// The outbox file.
        path: PathBuf,
    },
}

/// What a file held when it was opened: the session to resume.
#[derive(Debug)]
pub(crate) struct Restored {
    /// The session id (the file's, or the configured one for a new file).
    pub sid: String,
    /// This client's stream epoch (the file's, or the fresh one for a new file).
    pub epoch: String,
    /// The server epoch the last server id counts in.
    pub server_epoch: Option<String>,
    /// The highest server message id delivered to the application.
    pub last_server_id: u64,
    /// The first id for new messages.
    pub next_id: u64,
    /// The messages not yet delivered, in id order.
    pub messages: Vec<(MessageId, Payload)>,
    /// A torn last record was cut off (its size in bytes), to be logged.
    pub torn_bytes: Option<u64>,
}

/// The mode a file is written in.
fn mode_name(envelope: bool) -> &'static str {
    if envelope {
        "envelope"
    } else {
        "raw"
    }
}

/// An open, locked outbox file. All calls come under the outbox's lock, in message order.
#[derive(Debug)]
pub(crate) struct Store {
    file: File,
    path: PathBuf,
    sync: OutboxSync,
    envelope: bool,
    sid: String,
    epoch: String,
    /// The file's length.
    len: u64,
    /// The bytes of live `accepted` records (what a compaction would keep).
    live: u64,
    /// Live `accepted` record sizes by id, so that `done` can count them off.
    sizes: BTreeMap<u64, u64>,
    /// The last server position recorded.
    server: (Option<String>, u64),
    /// Records waiting for [`Store::flush`].
    pending: Vec<u8>,
    /// Written since the last `fdatasync`.
    unsynced: bool,
}

/// What [`Store::open`] needs besides the path.
pub(crate) struct OpenParams<'a> {
    pub sync: OutboxSync,
    pub envelope: bool,
    /// The configured session id, if the application chose one.
    pub configured_sid: Option<&'a str>,
    /// The session id for a new file when none is configured.
    pub fresh_sid: &'a str,
    /// The epoch for a new file.
    pub fresh_epoch: &'a str,
}

/// Open (or create) the file and take its exclusive lock: one live client per file.
fn open_locked(path: &Path) -> Result<File, StoreError> {
    let io = |op: &'static str| {
        let path = path.to_path_buf();
        move |e: std::io::Error| StoreError::Io {
            path,
            op,
            error: e.to_string(),
        }
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io("open"))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::InUse {
            path: path.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(io("lock")(e)),
    }
}

impl Log {
    /// Refuse a file of another session or protocol mode than the configuration's.
    fn belongs_to(&self, p: &OpenParams<'_>, path: &Path) -> Result<(), StoreError> {
        if let Some(configured) = p.configured_sid {
            if configured != self.sid {
                return Err(StoreError::OtherSession {
                    path: path.to_path_buf(),
                    found: self.sid.clone(),
                    configured: configured.to_owned(),
                });
            }
        }
        if self.envelope != p.envelope {
            return Err(StoreError::OtherMode {
                path: path.to_path_buf(),
                found: mode_name(self.envelope),
                configured: mode_name(p.envelope),
            });
        }
        Ok(())
    }
}

impl Store {
    /// Open (or create) the file at `path`, lock it, and read what it holds.
    pub(crate) fn open(path: &Path, p: &OpenParams<'_>) -> Result<(Store, Restored), StoreError> {
        let io = |op: &'static str| {
            let path = path.to_path_buf();
            move |e: std::io::Error| StoreError::Io {
                path,
                op,
                error: e.to_string(),
            }
        };
        let mut file = open_locked(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io("read"))?;
        let mut store = Store {
            file,
            path: path.to_path_buf(),
            sync: p.sync,
            envelope: p.envelope,
            sid: String::new(),
            epoch: String::new(),
            len: 0,
            live: 0,
            sizes: BTreeMap::new(),
            server: (None, 0),
            pending: Vec::new(),
            unsynced: false,
        };
        if bytes.is_empty() {
            store.sid = p.configured_sid.unwrap_or(p.fresh_sid).to_owned();
            store.epoch = p.fresh_epoch.to_owned();
            let mut init = header();
            init.extend(store.meta_record(1));
            store.write_now(&init, "create")?;
            store.sync_now()?;
            let restored = store.restored(1, Vec::new(), None);
            return Ok((store, restored));
        }
        let log = parse(&bytes, path)?;
        log.belongs_to(p, path)?;
        let torn = (log.good_len < bytes.len() as u64).then(|| bytes.len() as u64 - log.good_len);
        if torn.is_some() {
            store.file.set_len(log.good_len).map_err(io("truncate"))?;
        }
        store.file.seek(SeekFrom::End(0)).map_err(io("seek in"))?;
        store.len = log.good_len;
        store.sid = log.sid;
        store.epoch = log.epoch;
        store.server = log.server;
        store.sizes = log.sizes;
        store.live = store.sizes.values().sum();
        let messages = log.messages.into_iter().collect();
        let restored = store.restored(log.next_id, messages, torn);
        Ok((store, restored))
    }

    fn restored(
        &self,
        next_id: u64,
        messages: Vec<(MessageId, Payload)>,
        torn_bytes: Option<u64>,
    ) -> Restored {
        Restored {
            sid: self.sid.clone(),
            epoch: self.epoch.clone(),
            server_epoch: self.server.0.clone(),
            last_server_id: self.server.1,
            next_id,
            messages,
            torn_bytes,
        }
    }

    /// Record an accepted message; written (and synced with [`OutboxSync::Always`]) before
    /// this returns, together with any pending records.
    pub(crate) fn accepted(&mut self, id: MessageId, payload: &Payload) -> Result<(), StoreError> {
        let (kind, data): (u8, &[u8]) = match payload {
            Payload::Text(t) => (0, t.as_bytes()),
            Payload::Binary(b) => (1, b),
        };
        let start = self.pending.len();
        let mut body = Vec::with_capacity(10 + data.len());
        body.push(ACCEPTED);
        body.extend_from_slice(&id.0.to_le_bytes());
        body.push(kind);
        body.extend_from_slice(data);
        push_record(&mut self.pending, &body);
        let size = (self.pending.len() - start) as u64;
        let pending = std::mem::take(&mut self.pending);
        if let Err(e) = self.write_now(&pending, "append to") {
            // Nothing of it counts: the caller refuses the message. Keep the older records.
            self.pending = pending;
            self.pending.truncate(start);
            return Err(e);
        }
        self.sizes.insert(id.0, size);
        self.live += size;
        if self.sync == OutboxSync::Always {
            self.sync_now()?;
        }
        Ok(())
    }

    /// Note that message `id` left the outbox for good (written by the next [`Store::flush`]).
    pub(crate) fn done(&mut self, id: MessageId) {
        if let Some(size) = self.sizes.remove(&id.0) {
            self.live -= size;
        }
        let mut body = [0u8; 9];
        body[0] = DONE;
        body[1..].copy_from_slice(&id.0.to_le_bytes());
        push_record(&mut self.pending, &body);
    }

    /// Note the highest server message id delivered to the application and the epoch it
    /// counts in (written by the next [`Store::flush`]).
    pub(crate) fn server_position(&mut self, epoch: Option<&str>, last: u64) {
        if self.server.1 == last && self.server.0.as_deref() == epoch {
            return;
        }
        self.server = (epoch.map(str::to_owned), last);
        let body = server_body(epoch, last);
        push_record(&mut self.pending, &body);
    }

    /// Write the pending records; compact when the file is mostly dead records (`live`
    /// gives the messages still queued, in order, and the next id). A failure is logged and
    /// the records stay pending for the next flush: what they record (a delivery) is already
    /// true, and a restart before they are written only sends those messages again, which
    /// the server de-duplicates (envelope mode) or raw mode's at-least-once allows.
    pub(crate) fn flush<'a>(
        &mut self,
        live: impl Iterator<Item = (MessageId, &'a Payload)>,
        next_id: u64,
    ) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        match self.write_now(&pending, "append to") {
            Ok(()) => {
                if self.sync == OutboxSync::Always {
                    if let Err(e) = self.sync_now() {
                        tracing::warn!(error = %e, "persistent outbox: sync failed");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "persistent outbox: a record could not be written yet");
                self.pending = pending;
                return;
            }
        }
        if self.len > COMPACT_MIN_BYTES && self.len > 4 * (self.live + HEADER_LEN + 256) {
            if let Err(e) = self.compact(live, next_id) {
                tracing::warn!(error = %e, "persistent outbox: compaction failed (the log keeps growing until one succeeds)");
            }
        }
    }

    /// [`OutboxSync::Batch`]: make everything written so far durable (called once per batch
    /// written to the socket).
    pub(crate) fn sync_batch(&mut self) {
        if self.sync == OutboxSync::Batch && self.unsynced {
            if let Err(e) = self.sync_now() {
                tracing::warn!(error = %e, "persistent outbox: sync failed");
            }
        }
    }

    /// Rewrite the file with only its live records: a new file beside it, synced, renamed
    /// over the old one (atomic), then the directory synced.
    fn compact<'a>(
        &mut self,
        live: impl Iterator<Item = (MessageId, &'a Payload)>,
        next_id: u64,
    ) -> Result<(), StoreError> {
        let mut tmp_path = self.path.clone().into_os_string();
        tmp_path.push(".compact");
        let tmp_path = PathBuf::from(tmp_path);
        let io = |op: &'static str| {
            let path = tmp_path.clone();
            move |e: std::io::Error| StoreError::Io {
                path,
                op,
                error: e.to_string(),
            }
        };
        let mut out = header();
        out.extend(self.meta_record(next_id));
        push_record(
            &mut out,
            &server_body(self.server.0.as_deref(), self.server.1),
        );
        let mut sizes = BTreeMap::new();
        for (id, payload) in live {
            let start = out.len();
            let (kind, data): (u8, &[u8]) = match payload {
                Payload::Text(t) => (0, t.as_bytes()),
                Payload::Binary(b) => (1, b),
            };
            let mut body = Vec::with_capacity(10 + data.len());
            body.push(ACCEPTED);
            body.extend_from_slice(&id.0.to_le_bytes());
            body.push(kind);
            body.extend_from_slice(data);
            push_record(&mut out, &body);
            sizes.insert(id.0, (out.len() - start) as u64);
        }
        let mut file = File::create(&tmp_path).map_err(io("create"))?;
        // Locked before it takes the path: a client opening the path finds it in use.
        file.try_lock().map_err(|e| io("lock")(e.into()))?;
        file.write_all(&out).map_err(io("write"))?;
        file.sync_data().map_err(io("sync"))?;
        std::fs::rename(&tmp_path, &self.path).map_err(io("rename"))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(dir) = File::open(dir) {
                let _ = dir.sync_all();
            }
        }
        tracing::debug!(
            from = self.len,
            to = out.len(),
            "persistent outbox compacted"
        );
        self.file = file;
        self.len = out.len() as u64;
        self.live = sizes.values().sum();
        self.sizes = sizes;
        self.unsynced = false;
        Ok(())
    }

    fn meta_record(&self, next_id: u64) -> Vec<u8> {
        let mut body = vec![META, u8::from(self.envelope)];
        body.extend_from_slice(&next_id.to_le_bytes());
        push_str(&mut body, &self.sid, 2);
        push_str(&mut body, &self.epoch, 1);
        let mut out = Vec::new();
        push_record(&mut out, &body);
        out
    }

    fn write_now(&mut self, bytes: &[u8], op: &'static str) -> Result<(), StoreError> {
        if let Err(e) = self.file.write_all(bytes) {
            // A short write leaves a torn record at the end: cut it, so the next record is
            // not appended behind it (which would read as damage in the middle).
            let _ = self.file.set_len(self.len);
            let _ = self.file.seek(SeekFrom::Start(self.len));
            return Err(StoreError::Io {
                path: self.path.clone(),
                op,
                error: e.to_string(),
            });
        }
        self.len += bytes.len() as u64;
        self.unsynced = true;
        Ok(())
    }

    fn sync_now(&mut self) -> Result<(), StoreError> {
        self.file.sync_data().map_err(|e| StoreError::Io {
            path: self.path.clone(),
            op: "sync",
            error: e.to_string(),
        })?;
        self.unsynced = false;
        Ok(())
    }
}

fn header() -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN as usize);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&FORMAT.to_le_bytes());
    h.extend_from_slice(&[0; 4]);
    h
}

fn server_body(epoch: Option<&str>, last: u64) -> Vec<u8> {
    let mut body = vec![SERVER];
    body.extend_from_slice(&last.to_le_bytes());
    push_str(&mut body, epoch.unwrap_or(""), 1);
    body
}

fn push_str(out: &mut Vec<u8>, s: &str, width: usize) {
    // Session ids are at most 128 bytes and epochs at most 64 (checked by the config and the
    // envelope decoder), so the length fits its prefix.
    let len = s.len().to_le_bytes();
    out.extend_from_slice(&len[..width]);
    out.extend_from_slice(s.as_bytes());
}

fn push_record(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(body).to_le_bytes());
    out.extend_from_slice(body);
}

/// What a whole file says.
#[derive(Debug)]
struct Log {
    envelope: bool,
    sid: String,
    epoch: String,
    next_id: u64,
    server: (Option<String>, u64),
    messages: BTreeMap<MessageId, Payload>,
    sizes: BTreeMap<u64, u64>,
    /// The length up to the end of the last good record.
    good_len: u64,
}

/// The file starts with our magic and a format this build reads.
fn check_header(bytes: &[u8], path: &Path) -> Result<(), StoreError> {
    if bytes.len() < HEADER_LEN as usize || &bytes[..8] != MAGIC {
        // A header cut short by a crash at creation is still only the start of ours.
        if bytes.len() < HEADER_LEN as usize && MAGIC.starts_with(&bytes[..bytes.len().min(8)]) {
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                offset: 0,
                why: "the header is incomplete".to_owned(),
            });
        }
        return Err(StoreError::NotAnOutbox {
            path: path.to_path_buf(),
        });
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version > FORMAT {
        return Err(StoreError::NewerFormat {
            path: path.to_path_buf(),
            version,
        });
    }
    Ok(())
}

impl Log {
    /// Apply one record whose checksum matched (`size`: its bytes in the file); `first`: the
    /// first record, which must be the meta record. The error says what is wrong with it.
    fn apply(&mut self, body: &[u8], first: bool, size: u64) -> Result<(), &'static str> {
        match body.first() {
            Some(&META) if first => {
                let mut r = Reader(&body[1..]);
                self.envelope = r.u8().ok_or("short meta record")? == 1;
                self.next_id = r.u64().ok_or("short meta record")?;
                self.sid = r.str(2).ok_or("bad session id")?;
                self.epoch = r.str(1).ok_or("bad epoch")?;
            }
            _ if first => return Err("the first record is not the meta record"),
            Some(&ACCEPTED) => {
                let mut r = Reader(&body[1..]);
                let id = r.u64().ok_or("short message record")?;
                let kind = r.u8().ok_or("short message record")?;
                let data = Bytes::copy_from_slice(r.0);
                let payload = match kind {
                    0 => {
                        let text = String::from_utf8(data.to_vec())
                            .map_err(|_| "a text message is not UTF-8")?;
                        Payload::Text(text.into())
                    }
                    1 => Payload::Binary(data),
                    _ => return Err("unknown message kind"),
                };
                self.messages.insert(MessageId(id), payload);
                self.sizes.insert(id, size);
                self.next_id = self.next_id.max(id + 1);
            }
            Some(&DONE) => {
                let id = Reader(&body[1..]).u64().ok_or("short done record")?;
                self.messages.remove(&MessageId(id));
                self.sizes.remove(&id);
            }
            Some(&SERVER) => {
                let mut r = Reader(&body[1..]);
                let last = r.u64().ok_or("short server record")?;
                let epoch = r.str(1).ok_or("bad server epoch")?;
                self.server = ((!epoch.is_empty()).then_some(epoch), last);
            }
            _ => return Err("unknown record type"),
        }
        Ok(())
    }
}

fn parse(bytes: &[u8], path: &Path) -> Result<Log, StoreError> {
    let corrupt = |offset: u64, why: &str| StoreError::Corrupt {
        path: path.to_path_buf(),
        offset,
        why: why.to_owned(),
    };
    check_header(bytes, path)?;
    let mut log = Log {
        envelope: false,
        sid: String::new(),
        epoch: String::new(),
        next_id: 1,
        server: (None, 0),
        messages: BTreeMap::new(),
        sizes: BTreeMap::new(),
        good_len: HEADER_LEN,
    };
    let mut at = HEADER_LEN as usize;
    let mut seen_meta = false;
    while at < bytes.len() {
        let offset = at as u64;
        let rest = &bytes[at..];
        let torn_tail = |log: &Log| -> Result<(), StoreError> {
            if seen_meta {
                Ok(())
            } else {
                Err(corrupt(log.good_len, "the first record is incomplete"))
            }
        };
        if rest.len() < 8 {
            torn_tail(&log)?;
            break;
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        let end = 8 + len as usize;
        if len > MAX_RECORD {
            // A torn record still has its whole length (written first): this is damage.
            return Err(corrupt(offset, "a record length is impossible"));
        }
        if end > rest.len() {
            torn_tail(&log)?;
            break; // runs past the end: the last record, torn
        }
        let body = &rest[8..end];
        if crc32(body) != crc {
            if end == rest.len() {
                torn_tail(&log)?;
                break; // the last record, torn
            }
            return Err(corrupt(offset, "a record's checksum does not match"));
        }
        log.apply(body, !seen_meta, end as u64)
            .map_err(|why| corrupt(offset, why))?;
        seen_meta = true;
        at += end;
        log.good_len = at as u64;
    }
    if !seen_meta {
        return Err(corrupt(HEADER_LEN, "the meta record is missing"));
    }
    Ok(log)
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }
    fn str(&mut self, width: usize) -> Option<String> {
        let mut len = [0u8; 8];
        len[..width].copy_from_slice(self.take(width)?);
        let n = usize::try_from(u64::from_le_bytes(len)).ok()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

/// CRC-32 (IEEE 802.3, as zlib's), table-driven.
fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut c = !0u32;
    for &b in data {
        c = TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(envelope: bool) -> OpenParams<'static> {
        OpenParams {
            sync: OutboxSync::None,
            envelope,
            configured_sid: None,
            fresh_sid: "sid-1",
            fresh_epoch: "ep1",
        }
    }

    fn text(s: &str) -> Payload {
        Payload::Text(s.to_owned().into())
    }

    fn texts(r: &Restored) -> Vec<(u64, String)> {
        r.messages
            .iter()
            .map(|(id, p)| match p {
                Payload::Text(t) => (id.0, t.to_string()),
                Payload::Binary(b) => (id.0, format!("{b:?}")),
            })
            .collect()
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn messages_session_and_position_survive_a_reopen_and_ids_continue() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ob");
        {
            let (mut s, r) = Store::open(&path, &params(true)).unwrap();
            assert_eq!(
                (r.sid.as_str(), r.epoch.as_str(), r.next_id),
                ("sid-1", "ep1", 1)
            );
            for i in 1..=5 {
                s.accepted(MessageId(i), &text(&format!("m{i}"))).unwrap();
            }
            s.accepted(
                MessageId(6),
                &Payload::Binary(Bytes::from_static(&[0, 1, 2])),
            )
            .unwrap();
            s.done(MessageId(1));
            s.done(MessageId(3));
            s.server_position(Some("sep9"), 41);
            s.flush(std::iter::empty(), 7);
        }
        let mut p = params(true);
        p.fresh_sid = "other";
        p.fresh_epoch = "other";
        let (_s, r) = Store::open(&path, &p).unwrap();
        assert_eq!((r.sid.as_str(), r.epoch.as_str()), ("sid-1", "ep1"));
        assert_eq!(r.server_epoch.as_deref(), Some("sep9"));
        assert_eq!(r.last_server_id, 41);
        assert_eq!(r.next_id, 7);
        let ids: Vec<u64> = r.messages.iter().map(|(id, _)| id.0).collect();
        assert_eq!(ids, [2, 4, 5, 6]);
        assert!(matches!(&r.messages[3].1, Payload::Binary(b) if b[..] == [0, 1, 2]));
        assert_eq!(r.torn_bytes, None);
    }

    #[test]
    fn a_torn_last_record_is_cut_off_and_the_rest_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ob");
        {
            let (mut s, _) = Store::open(&path, &params(false)).unwrap();
            s.accepted(MessageId(1), &text("kept")).unwrap();
            s.accepted(MessageId(2), &text("torn")).unwrap();
        }
        let full = std::fs::metadata(&path).unwrap().len();
        for cut in 1..(8 + 10 + 4) {
            let copy = dir.path().join(format!("cut{cut}"));
            std::fs::copy(&path, &copy).unwrap();
            OpenOptions::new()
                .write(true)
                .open(&copy)
                .unwrap()
                .set_len(full - cut)
                .unwrap();
            let (mut s, r) = Store::open(&copy, &params(false)).unwrap();
            assert_eq!(texts(&r), [(1, "kept".to_owned())], "cut {cut}");
            assert!(r.torn_bytes.is_some());
            // Appending after the recovery gives a clean file.
            s.accepted(MessageId(2), &text("again")).unwrap();
            drop(s);
            let (_s, r) = Store::open(&copy, &params(false)).unwrap();
            assert_eq!(texts(&r), [(1, "kept".to_owned()), (2, "again".to_owned())]);
            assert_eq!(r.torn_bytes, None);
        }
    }

    #[test]
    fn damage_before_the_end_is_refused_and_the_file_left_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ob");
        {
            let (mut s, _) = Store::open(&path, &params(false)).unwrap();
            s.accepted(MessageId(1), &text("first")).unwrap();
            s.accepted(MessageId(2), &text("second")).unwrap();
        }
        let mut bytes = std::fs::read(&path).unwrap();
        let len = bytes.len();
        // The payload of message 1 ("first") sits before message 2's record.
        let at = bytes
            .windows(5)
            .position(|w| w == b"first")
            .expect("payload in file");
        bytes[at] ^= 0xFF;
        std::fs::write(&path, &bytes).unwrap();
        let err = Store::open(&path, &params(false)).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("damaged at byte"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap().len(), len, "left as it is");
    }

    #[test]
    fn foreign_newer_other_session_other_mode_and_busy_files_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let foreign = dir.path().join("foreign");
        std::fs::write(&foreign, b"{\"not\": \"an outbox\"}").unwrap();
        let err = Store::open(&foreign, &params(false)).unwrap_err();
        assert!(matches!(err, StoreError::NotAnOutbox { .. }), "{err}");

        let newer = dir.path().join("newer");
        let mut h = header();
        h[8] = 9;
        std::fs::write(&newer, &h).unwrap();
        let err = Store::open(&newer, &params(false)).unwrap_err();
        assert!(
            matches!(err, StoreError::NewerFormat { version: 9, .. }),
            "{err}"
        );

        let path = dir.path().join("ob");
        let (held, _) = Store::open(&path, &params(true)).unwrap();
        let err = Store::open(&path, &params(true)).unwrap_err();
        assert!(matches!(err, StoreError::InUse { .. }), "{err}");
        drop(held);

        let mut p = params(true);
        p.configured_sid = Some("someone-else");
        let err = Store::open(&path, &p).unwrap_err();
        assert!(matches!(err, StoreError::OtherSession { .. }), "{err}");
        let err = Store::open(&path, &params(false)).unwrap_err();
        assert!(matches!(err, StoreError::OtherMode { .. }), "{err}");
        // The configured session id of a new file is the file's.
        let mut p = params(true);
        p.configured_sid = Some("mine");
        let (_s, r) = Store::open(&dir.path().join("new"), &p).unwrap();
        assert_eq!(r.sid, "mine");
    }

    #[test]
    fn compaction_keeps_exactly_the_live_messages_and_the_next_id() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ob");
        let big = "x".repeat(4096);
        let mut live: Vec<(MessageId, Payload)> = Vec::new();
        {
            let (mut s, _) = Store::open(&path, &params(true)).unwrap();
            for i in 1..=2000u64 {
                let p = text(&format!("{i}:{big}"));
                s.accepted(MessageId(i), &p).unwrap();
                live.push((MessageId(i), p));
                if i > 3 {
                    // Keep the three newest messages alive.
                    let (old, _) = live.remove(0);
                    s.done(old);
                }
                s.flush(live.iter().map(|(id, p)| (*id, p)), i + 1);
            }
            assert!(s.len < 2 * COMPACT_MIN_BYTES, "compacted: {} bytes", s.len);
        }
        assert!(std::fs::metadata(&path).unwrap().len() < 2 * COMPACT_MIN_BYTES);
        let (_s, r) = Store::open(&path, &params(true)).unwrap();
        let ids: Vec<u64> = r.messages.iter().map(|(id, _)| id.0).collect();
        assert_eq!(ids, [1998, 1999, 2000]);
        assert_eq!(r.next_id, 2001);
        assert!(!dir.path().join("ob.compact").exists());
    }

    #[test]
    fn a_compaction_ending_with_all_messages_done_keeps_the_id_sequence() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ob");
        let big = "y".repeat(8192);
        {
            let (mut s, _) = Store::open(&path, &params(true)).unwrap();
            for i in 1..=300u64 {
                s.accepted(MessageId(i), &text(&big)).unwrap();
                s.done(MessageId(i));
                s.flush(std::iter::empty(), i + 1);
            }
        }
        let (_s, r) = Store::open(&path, &params(true)).unwrap();
        assert!(r.messages.is_empty());
        assert_eq!(r.next_id, 301);
    }
}
