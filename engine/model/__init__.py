"""The model: the LSTM, its tokenizer, self-describing checkpoints, the device it runs on."""
