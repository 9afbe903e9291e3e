package contract

// The fields of a stream entry, as the publish script writes them and
// replay reads them.
const (
	// FieldPrev holds the id of the source's previous event ("0-0" for the
	// first), so a reader can prove that nothing between two entries was
	// trimmed away.
	FieldPrev = "p"
	// FieldTopic holds, in a feed's entries, the topic the event was
	// published to (contract v2).
	FieldTopic = "k"
	// FieldType holds the event type; it is absent when there is none.
	FieldType = "t"
	// FieldData holds the event's data.
	FieldData = "d"
)
