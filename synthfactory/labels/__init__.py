"""Labels a person gives rows: the `_labels/` Delta table, the sample to label, the labelling page
on 127.0.0.1 and Label Studio export/import (`synthfactory label STORE/NAME`)."""
