"""The OTLP mapping: request bodies to protobuf messages, messages to columnar rows as the exporter writes them."""
