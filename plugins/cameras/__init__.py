"""Built-in camera sources: RTSP and files through PyAV, and HTTP snapshot polling."""
