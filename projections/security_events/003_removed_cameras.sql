-- (Named for this read model: every table gets a view of its name in `public`.)
-- Cameras removed and not registered again, as far as this read model has applied the log
-- (RemovedCameras): what is recorded for one of them while it stands removed (a detection that
-- raced its removal, a security event the batch aggregator opened after it for detections from
-- before it) is hidden as it is applied, as the removal hid what came before it.
CREATE TABLE security_event_removed_cameras (camera_id text PRIMARY KEY);
