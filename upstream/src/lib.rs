//! voiceflow
