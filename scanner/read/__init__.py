"""Reading codes: device sources -> (camera frames: decode) -> hygiene -> a decide sink.

    registry.py  configuration name -> source factory (camera, serial, hid, stdin)
    frames.py    camera frames -> raw reads, fast decode pass every frame, full every Nth
    decode.py    zxing-cpp / pyzbar behind one Decoder interface
    hygiene.py   normalise, reject with a reason, deduplicate -> Payload
    pipeline.py  threads per source, one consumer calling the sink in order
"""
