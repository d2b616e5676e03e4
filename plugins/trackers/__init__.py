"""Built-in trackers: ByteTrack, SORT and OC-SORT from the `trackers` package."""
