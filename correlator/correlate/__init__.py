"""Pure correlation functions: records or frames in, records out; the clock and windows are arguments."""
