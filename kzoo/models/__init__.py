"""Model families; importing this package registers every named variant."""
