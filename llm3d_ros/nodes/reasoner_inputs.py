"""Where `llm3d_reasoner`'s answers get their 3D input (its module docstring's "Where the map comes
from" and "Before any map exists"): the mapper's newest save, loaded in the worker, or, before any
map, the camera's newest view with the subscriptions that feed it.

After a map loads, the worker names its objects with the object pointer one pass at a time between
requests (Reasoner.warm_names), so the first request that needs the names does not wait for them.

A mixin of ReasonerNode, kept in its own file: it uses the node's config (`cfg`), `map_dir`, lock,
worker (`_worker`, `_reasoner`, `_map`, `_map_job`, `_model_state`), view input (`_view`,
`_view_subs`, `_view_group`, `_view_topics`, `_view_encoder`) and the mapper's save client
(`_save_client`, `_save_future`, `_mapper_unsaved`).
"""

from __future__ import annotations

import json
import time

from rclpy.event_handler import SubscriptionEventCallbacks
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from llm3d_core.config import ConfigError
from llm3d_core.device import release_free_memory
from llm3d_core.reasoner import ReasonerError, saved_map_version
from llm3d_ros.conversions import transport_topic
from llm3d_ros.qos import sensor_qos
from llm3d_ros.view_input import ViewError, view_frame_id, view_scene

SENSOR_QOS = sensor_qos(1)


class MapInputs:
    """The map (worker thread) and the single-view input (timer group)."""

    def _refresh_map(self) -> None:
        """Loads map_dir when its save id differs from the loaded one (worker thread)."""
        if self._reasoner is None:
            return
        version = saved_map_version(self.map_dir)
        with self._lock:
            loaded = self._map["version"]
        if not version or version == loaded:
            return
        from llm3d_core.mapping.mapper import FeatureFusionMapper, MapFileError
        from llm3d_core.model.scene import EmptySceneError

        t0 = time.monotonic()
        try:
            mapper = FeatureFusionMapper.load(self.map_dir, device="cpu")
            snap = self._reasoner.set_map(mapper, version)
            self._view_encoder = None  # answers come from maps now (the worker's; shared encoders live on in them)
            release_free_memory()  # the previous map is gone now: return its memory
        except (MapFileError, EmptySceneError, ReasonerError, ConfigError) as err:
            self.get_logger().warning(f"map {self.map_dir} (save {version}) not loaded: {err}",
                                      throttle_duration_sec=10.0)
            with self._lock:
                self._map["error"] = str(err)
            return
        with self._lock:
            self._map.update(version=version, objects=len(mapper.objects), points=int(snap.scene.points.shape[0]),
                             frames=mapper.frames, loaded_at=self.get_clock().now().nanoseconds * 1e-9, error="",
                             loads=self._map["loads"] + 1, input="map")
        self.get_logger().info(f"map save {version} loaded: {mapper.frames} frames, {len(mapper.objects)} objects "
                               f"({time.monotonic() - t0:.2f} s)")
        self._submit_warm_names(version, time.monotonic())

    def _submit_warm_names(self, version: str, t0: float) -> None:
        """Queues the next naming pass of map save `version` behind whatever the worker holds."""
        if self._stopping.is_set():
            return
        try:
            self._worker.submit(self._warm_names, version, t0)
        except RuntimeError:  # the worker is shutting down
            pass

    def _warm_names(self, version: str, t0: float) -> None:
        """One naming pass of the loaded map (Reasoner.warm_names), then the next is queued: a
        request that arrives meanwhile runs after at most one pass (0.5 s at torch_threads 1)
        and finds the names made instead of paying 22 passes (11-20 s beside the mapper). Stops
        when another map is loaded (worker thread; never raises: a failed pass leaves the naming
        to the request that needs it)."""
        reasoner = self._reasoner
        if reasoner is None or self._stopping.is_set() or reasoner.map is None or reasoner.map.version != version:
            return
        try:
            done = reasoner.warm_names(1)
        except Exception as err:  # noqa: BLE001 - the worker must survive anything a pass raises
            self.get_logger().warning(f"naming the objects of map save {version} ahead failed: {err!r}")
            return
        if not done:
            self._submit_warm_names(version, t0)
        elif reasoner.names_ready:  # (done without names: no pointer, or nothing reads them)
            self.get_logger().info(f"map save {version}: objects named by the pointer "
                                   f"({time.monotonic() - t0:.1f} s, between requests)")

    def _refresh_view(self) -> None:
        """With no map loaded: makes the newest camera view the reasoner's input (worker thread)."""
        reasoner = self._reasoner
        if self._view is None:
            return
        try:
            view = self._view.newest(self.cfg.frame_input.max_age_s, self._view_topics)
        except ViewError as err:
            reasoner.map = None  # a stale view must not answer for the present
            raise ReasonerError(f"no map yet (the mapper has not saved one) and {err}") from err
        if reasoner.map is not None and reasoner.map.version == view.version:
            return
        fin = self.cfg.frame_input
        try:
            if self._view_encoder is None:
                import dataclasses

                from llm3d_core.encoders import shared_image_encoder

                # On the CPU, as maps load (device="cpu"): then the view and the maps share one
                # EfficientNet + MiniLM (~360 MB) instead of holding two.
                self._view_encoder = shared_image_encoder(dataclasses.replace(fin.encoder, device="cpu"))
            scene = view_scene(view, self._view_encoder, fin, self._reasoner.model.config.num_points,
                               self._reasoner.model.config.seed)
            reasoner.set_frame(scene, view.version, view_frame_id(view, fin))
        except ViewError as err:
            raise ReasonerError(f"no map yet, and {err}") from err
        with self._lock:
            self._map["input"] = "camera view"

    def _update_view_input(self, map_saved: bool) -> None:
        """Camera subscriptions while they can serve: the model is ready and no map is loaded or
        loadable; they end once a map is loaded (timer group)."""
        if self._view is None:
            return
        with self._lock:
            mapped, ready, map_error = self._map["input"] == "map", self._model_state == "ready", self._map["error"]
        want = ready and not mapped and not (map_saved and not map_error)
        fin = self.cfg.frame_input
        if want and not self._view_subs:
            # No QoS event handlers on these: they are destroyed while the executor spins, and rclpy
            # (kilted) adds event handlers to its wait set unguarded, so destroying one at that moment
            # raised InvalidHandle out of spin() and killed the node (seen under load, soak test).
            events = SubscriptionEventCallbacks(use_default_callbacks=False)
            self._view_subs = [
                self.create_subscription(Image if fin.color_transport == "raw" else CompressedImage,
                                         transport_topic(fin.color_topic, fin.color_transport), self._view.add_color,
                                         SENSOR_QOS, callback_group=self._view_group, event_callbacks=events),
                self.create_subscription(Image if fin.depth_transport == "raw" else CompressedImage,
                                         transport_topic(fin.depth_topic, fin.depth_transport), self._view.add_depth,
                                         SENSOR_QOS, callback_group=self._view_group, event_callbacks=events),
                self.create_subscription(CameraInfo, fin.camera_info_topic, self._view.add_camera_info, SENSOR_QOS,
                                         callback_group=self._view_group, event_callbacks=events)]
            self.get_logger().info(f"no map yet: answering about the camera's current view ({self._view_topics})")
        elif mapped and self._view_subs:
            for sub in self._view_subs:
                self.destroy_subscription(sub)
            self._view_subs = []
            self.get_logger().info("a map is loaded: answers refer to it; camera-view input off")

    def _poll_map(self) -> None:
        """Prefetches a new save in the worker, so the next request does not pay for loading it;
        starts or ends the single-view input."""
        version = saved_map_version(self.map_dir)
        self._update_view_input(bool(version))
        if self._map_job is not None and not self._map_job.done():
            return
        with self._lock:
            changed = bool(version) and version != self._map["version"] and self._model_state == "ready"
        if changed and not self._stopping.is_set():
            try:
                self._map_job = self._worker.submit(self._refresh_map)
            except RuntimeError:  # the worker is shutting down
                pass

    def _on_mapper_status(self, msg: String) -> None:
        try:
            self._mapper_unsaved = bool(json.loads(msg.data)["saves"]["unsaved"])
        except (ValueError, KeyError, TypeError):
            self._mapper_unsaved = None

    def _request_save(self) -> None:
        """Asks the mapper to save when its map changed; asynchronous, one call in flight at most."""
        client = self._save_client
        if client is None or (self._save_future is not None and not self._save_future.done()):
            return
        if self._mapper_unsaved is False or not client.service_is_ready():
            return
        self._save_future = client.call_async(Trigger.Request())
