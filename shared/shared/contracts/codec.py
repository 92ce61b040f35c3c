"""JSON encoding and decoding of every contract; one encoder, one decoder per message family."""

from __future__ import annotations

import msgspec

from shared.contracts.events import JobEvent
from shared.contracts.jobs import DeadLetter, JobEnvelope

encoder = msgspec.json.Encoder()
event_decoder: msgspec.json.Decoder[JobEvent] = msgspec.json.Decoder(JobEvent)
envelope_decoder = msgspec.json.Decoder(JobEnvelope)
dead_letter_decoder = msgspec.json.Decoder(DeadLetter)
