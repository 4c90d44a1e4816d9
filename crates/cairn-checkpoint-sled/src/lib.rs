//! A checkpoint adapter on sled 0.34.7, for hosts that already run sled.
