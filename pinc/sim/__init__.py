"""The simulated PBX and CRM behind `pinc demo` and the tests: an AMI server that plays
recorded transcripts, the demo scenarios and player, and a fake vtiger."""
