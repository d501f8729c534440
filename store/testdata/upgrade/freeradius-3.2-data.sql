-- Upgrade test fixture: rows of a stock FreeRADIUS 3.2 database (loaded
-- after ../freeradius-3.2/schema.sql), written the way rlm_sql's stock
-- queries.conf writes them: Starts with 0 counters and '' for absent
-- string attributes, interims setting AcctInterval, Stops setting the stop
-- columns. The nas table holds what FreeRADIUS accepts and this server
-- cannot use as one router: a CIDR range, a hostname, a shortname two rows
-- share. Loaded by TestUpgradeFromFreeRADIUS.

INSERT INTO nas (nasname, shortname, type, ports, secret, server, community, description) VALUES
	('10.0.0.1', 'core1', 'other', NULL, 'testing123', NULL, NULL, 'RADIUS Client'),
	('10.0.0.2', 'core1', 'other', NULL, 'testing123', NULL, NULL, 'same shortname as row 1'),
	('10.1.0.0/24', 'pop-a', 'other', 1812, 'rangesecret', NULL, NULL, 'a whole POP'),
	('10.1.0.128/25', 'pop-a-hi', 'other', NULL, 'rangesecret2', NULL, NULL, 'upper half of POP A'),
	('bras.example.net', 'bras', 'mikrotik', NULL, 'hostsecret', '', 'public', NULL);

-- Start, interim and Stop of the stock queries, as their final state.
INSERT INTO radacct (AcctSessionId, AcctUniqueId, UserName, Realm, NASIPAddress, NASPortId, NASPortType,
	AcctStartTime, AcctUpdateTime, AcctStopTime, AcctInterval, AcctSessionTime, AcctAuthentic,
	ConnectInfo_start, ConnectInfo_stop, AcctInputOctets, AcctOutputOctets, CalledStationId,
	CallingStationId, AcctTerminateCause, ServiceType, FramedProtocol, FramedIPAddress,
	FramedIPv6Address, FramedIPv6Prefix, FramedInterfaceId, DelegatedIPv6Prefix, Class) VALUES
	-- open, Start only (router 10.0.0.1)
	('80f00001', '3f1b5a0b6f2c4a1e9d0c1b2a39485766', 'alice', NULL, '10.0.0.1', '15728641', 'Ethernet',
	 '2026-11-20 08:00:00+00', '2026-11-20 08:00:00+00', NULL, NULL, 0, 'RADIUS',
	 '', NULL, 0, 0, 'service1', '4C:5E:0C:00:00:01', NULL, 'Framed-User', 'PPP', '100.64.0.1',
	 NULL, NULL, NULL, NULL, NULL),
	-- open, after interims
	('80f00002', '4a2c6b1c7a3d5b2f0e1d2c3b4a596877', 'bob', NULL, '10.0.0.1', '15728642', 'Ethernet',
	 '2026-11-20 07:00:00+00', '2026-11-20 09:00:00+00', NULL, 300, 7200, 'RADIUS',
	 '', NULL, 123456789, 987654321, 'service1', '4C:5E:0C:00:00:02', NULL, 'Framed-User', 'PPP', '100.64.0.2',
	 NULL, '2001:db8:1::/64', NULL, '2001:db8:100::/56', 'ai:0123456789abcdef0123456789abcdef'),
	-- closed
	('80f00003', '5b3d7c2d8b4e6c3a1f2e3d4c5b6a7988', 'carol', 'isp.example', '10.0.0.1', '15728643', 'Ethernet',
	 '2026-11-19 10:00:00+00', '2026-11-19 11:55:00+00', '2026-11-19 12:00:00+00', 300, 7200, 'RADIUS',
	 '', '', 3000, 4000, 'service1', '4C:5E:0C:00:00:03', 'User-Request', 'Framed-User', 'PPP', '100.64.0.3',
	 NULL, NULL, NULL, NULL, NULL),
	-- from an address inside the CIDR rows (both /24 and /25 contain it)
	('80f00004', '6c4e8d3e9c5f7d4b2a3f4e5d6c7b8a99', 'dave', NULL, '10.1.0.200', '1', 'Virtual',
	 '2026-11-20 06:00:00+00', '2026-11-20 09:30:00+00', NULL, 600, 12600, 'RADIUS',
	 '', NULL, 555, 666, '', '', NULL, 'Framed-User', 'PPP', '100.64.1.4', NULL, NULL, NULL, NULL, NULL),
	('80f00005', '7d5f9e4fad608e5c3b405f6e7d8c9baa', 'erin', NULL, '10.1.0.7', '2', 'Virtual',
	 '2026-11-18 06:00:00+00', '2026-11-18 07:00:00+00', '2026-11-18 07:10:00+00', 600, 4200, 'RADIUS',
	 '', '', 7777, 8888, '', '', 'Lost-Carrier', 'Framed-User', 'PPP', '100.64.1.5', NULL, NULL, NULL, NULL, NULL),
	-- from the row with the shared shortname, and from no nas row at all
	('80f00006', '8e60af50be719f6d4c5160708e9dacbb', 'frank', NULL, '10.0.0.2', '3', 'Ethernet',
	 '2026-11-20 05:00:00+00', '2026-11-20 05:00:00+00', NULL, NULL, 0, 'RADIUS',
	 '', NULL, 0, 0, '', '', NULL, '', '', NULL, NULL, NULL, NULL, NULL, NULL),
	('80f00007', '9f71b061cf82a07e5d62718190aebdcc', 'grace', NULL, '192.0.2.99', '4', 'Ethernet',
	 '2026-11-17 05:00:00+00', '2026-11-17 06:00:00+00', '2026-11-17 06:00:00+00', NULL, 3600, 'RADIUS',
	 '', '', 10, 20, '', '', 'NAS-Reboot', '', '', NULL, NULL, NULL, NULL, NULL, NULL),
	-- an IPv6 NAS
	('80f00008', 'a082c172d093b18f6e73829201bfcedd', 'heidi', NULL, '2001:db8::1', '5', 'Ethernet',
	 '2026-11-20 04:00:00+00', '2026-11-20 04:00:00+00', NULL, NULL, 0, 'RADIUS',
	 '', NULL, 0, 0, '', '', NULL, '', '', NULL, '2001:db8:2::5', NULL, NULL, NULL, NULL);

INSERT INTO radcheck (UserName, Attribute, op, Value) VALUES
	('alice', 'Cleartext-Password', ':=', 'pw1'), ('bob', 'Cleartext-Password', ':=', 'pw2'),
	('bob', 'Simultaneous-Use', ':=', '1');
INSERT INTO radreply (UserName, Attribute, op, Value) VALUES ('alice', 'Framed-IP-Address', ':=', '100.64.0.1');
INSERT INTO radusergroup (UserName, GroupName, priority) VALUES ('alice', 'gold', 1), ('bob', 'silver', 1);
INSERT INTO radgroupcheck (GroupName, Attribute, op, Value) VALUES ('gold', 'Auth-Type', ':=', 'Accept');
INSERT INTO radgroupreply (GroupName, Attribute, op, Value) VALUES ('gold', 'Mikrotik-Rate-Limit', ':=', '50M/50M');
INSERT INTO radpostauth (username, pass, reply, CalledStationId, CallingStationId, authdate, Class) VALUES
	('alice', '', 'Access-Accept', 'service1', '4C:5E:0C:00:00:01', '2026-11-20 08:00:00+00', NULL);
INSERT INTO nasreload (NASIPAddress, ReloadTime) VALUES ('10.0.0.1', '2026-11-01 00:00:00+00');
