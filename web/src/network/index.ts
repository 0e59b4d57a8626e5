// What the dashboard mounts: the panel, and the hub it shows (web/net/hub.ts).
export { NetworkPanel, useHubState, type NetworkPanelProps } from "./NetworkPanel.tsx";
export { Topology } from "./Topology.tsx";
export { CaptureList } from "./CaptureList.tsx";
export { LinkControls } from "./LinkControls.tsx";
export { SwitchView } from "./SwitchView.tsx";
export { NetworkHub, type CardSpec, type CardInfo, type HubState, type NetworkInfo, type VmNetworkAttachment } from "../../net/hub.ts";
