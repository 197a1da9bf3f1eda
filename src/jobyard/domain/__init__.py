"""Pure domain: state machines as data, quorum arithmetic, policies, errors, clock. No I/O."""
