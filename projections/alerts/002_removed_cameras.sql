-- (Named for this read model: every table gets a view of its name in `public`.)
-- Cameras removed and not registered again, as far as this read model has applied the log
-- (RemovedCameras): an alert raised for one of them while it stands removed (the analysis of
-- an event from before the removal, finished after it) is hidden as it is applied, as the
-- removal hid the alerts that came before it.
CREATE TABLE alert_removed_cameras (camera_id text PRIMARY KEY);
