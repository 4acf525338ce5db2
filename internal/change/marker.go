package change

import "errors"

// Marker encodes the record value that stands in for e when e's own
// record is too large for Kafka: an envelope of the same op, table and
// source position whose before image holds the row's key columns only,
// whose after image is null, and whose source block says why
// (source.oversize: reason). It is produced under e's own key, so it lands
// in the row's partition, in order; the apply side dead-letters it with
// its key and reason (Event.Oversize), and `tandem dlq replay` re-reads
// the row from the source.
//
// The shape is Debezium's for a change whose row image is unavailable: a
// Debezium consumer that does not know tandem's source.oversize sees a
// delete keyed as the original (right, when the change was a delete) or an
// insert or update without an after image, which it cannot apply and
// should skip; the record also carries the header OversizeHeader.
func (enc *Encoder) Marker(e *Event, reason string) ([]byte, error) {
	if len(e.Key) == 0 {
		return nil, errors.New("a change of a table without a primary key has no key to dead-letter")
	}
	if reason == "" {
		return nil, errors.New("a marker needs a reason")
	}
	m := Event{
		Op: e.Op, Table: e.Table, Key: e.Key,
		// Columns is the key: the images, types and schema name only the
		// key's columns. The type maps are e's, shared, so the schema
		// cache keeps one entry per table.
		Columns: e.Key, Types: e.Types, SQLTypes: e.SQLTypes,
		Before: e.KeyRow(), Pos: e.Pos, TxID: e.TxID, Commit: e.Commit,
		Oversize: reason,
	}
	return enc.Value(&m)
}

// OversizeHeader is the Kafka record header of a marker (Encoder.Marker),
// its value the reason: a consumer can skip markers without reading the
// value.
const OversizeHeader = "tandem.oversize"
