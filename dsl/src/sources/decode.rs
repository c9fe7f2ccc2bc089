//! Decoding the values of queue records (Kafka, AMQP): raw bytes, UTF-8
//! text, JSON or one CSV line, shared by the queue sources.

use std::sync::Arc;

use serde::de::DeserializeOwned;

/// Decodes a record's value; the error says why it does not decode.
pub(crate) type Decode<V> = Arc<dyn Fn(&[u8]) -> Result<V, String> + Send + Sync>;

/// Values as they are.
pub(crate) fn bytes() -> Decode<Vec<u8>> {
    Arc::new(|bytes| Ok(bytes.to_vec()))
}

/// Values as UTF-8 text.
pub(crate) fn text() -> Decode<String> {
    Arc::new(|bytes| String::from_utf8(bytes.to_vec()).map_err(|e| format!("not UTF-8 text: {e}")))
}

/// Values as JSON documents of type `U`.
pub(crate) fn json<U: DeserializeOwned + 'static>() -> Decode<U> {
    Arc::new(|bytes| serde_json::from_slice(bytes).map_err(|e| format!("bad JSON: {e}")))
}

/// Values as one CSV line each, without a header, read into `U` field by
/// field in order.
pub(crate) fn csv<U: DeserializeOwned + 'static>() -> Decode<U> {
    Arc::new(|bytes| {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(bytes);
        match reader.deserialize().next() {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(format!("bad CSV: {e}")),
            None => Err("an empty CSV line".to_string()),
        }
    })
}
