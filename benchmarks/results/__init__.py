"""What a sweep writes and reads back: records, schemas, the curve model, statistics, change intervals, figures."""
