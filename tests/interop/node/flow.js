// The end-to-end flow through node-soap, with a client built only from the live
// /soap?wsdl: Eco -> AltaFactura -> ConsultarDeuda -> InformarPago (with idConsulta)
// -> replay -> ConsultarDeuda answers 2 -> ConsultarPago, plus a typed fault.
//
// Usage: node flow.js <wsdl-url> <idCliente>    (exit status 0 = every check passed)
'use strict';
const soap = require('soap');

let checks = 0;
function check(condition, what) {
  if (!condition) {
    console.error(`FAILED: ${what}`);
    process.exit(1);
  }
  checks += 1;
  console.log(`ok: ${what}`);
}

function buenosAiresToday(plusDays = 0) {
  const now = new Date(Date.now() - 3 * 3600 * 1000 + plusDays * 86400 * 1000);
  return now.toISOString().slice(0, 10);
}

async function main() {
  const [wsdl, customer] = process.argv.slice(2);
  const client = await soap.createClientAsync(wsdl);
  const invoice = 'N-0001';

  let [answer] = await client.EcoAsync({ mensaje: 'hola' });
  check(answer.mensaje === 'hola' && /[+-]\d\d:\d\d$|Z$/.test(String(answer.fechaHora)),
        'Eco echoes the message with the server time and its offset');

  [answer] = await client.AltaFacturaAsync({
    idEmpresa: '1234', idCliente: customer, idFactura: invoice, moneda: 'ARS',
    vencimientos: { vencimiento: [{ fecha: buenosAiresToday(10), importe: '980.10' }] },
    descripcion: 'Cuota Node',
  });
  check(Number(answer.codigoRespuesta) === 0, 'AltaFactura answers 0');

  [answer] = await client.ConsultarDeudaAsync({ idEmpresa: '1234', idCliente: customer });
  check(Number(answer.codigoRespuesta) === 0, 'ConsultarDeuda answers 0');
  const listed = [].concat(answer.facturas.factura);
  check(listed.length === 1 && listed[0].idFactura === invoice, 'one invoice listed');
  check(String(listed[0].importeAPagar) === '980.10', 'importeAPagar is 980.10');
  const queryId = answer.idConsulta;

  const payment = {
    idEmpresa: '1234', idOperacion: `NODE-${customer}`, idCliente: customer, idFactura: invoice,
    importe: '980.10', moneda: 'ARS', fechaPago: `${buenosAiresToday()}T00:00:00-03:00`,
    canal: 'NODE', idConsulta: queryId,
  };
  [answer] = await client.InformarPagoAsync(payment);
  check(Number(answer.codigoRespuesta) === 0, 'InformarPago answers 0');
  const receipt = answer.idRecibo;
  [answer] = await client.InformarPagoAsync(payment);
  check(Number(answer.codigoRespuesta) === 0 && answer.idRecibo === receipt,
        'a replay gets the first answer');

  [answer] = await client.ConsultarDeudaAsync({ idEmpresa: '1234', idCliente: customer });
  check(Number(answer.codigoRespuesta) === 2, 'ConsultarDeuda answers 2 once paid');

  [answer] = await client.ConsultarPagoAsync({ idEmpresa: '1234', idOperacion: payment.idOperacion });
  check(Number(answer.codigoRespuesta) === 0 && answer.estado === 'APLICADO'
        && answer.idRecibo === receipt && String(answer.importe) === '980.10',
        'ConsultarPago reports the payment applied, with its receipt');
  [answer] = await client.ConsultarPagoAsync({ idEmpresa: '1234', idOperacion: `NONE-${customer}` });
  check(Number(answer.codigoRespuesta) === 8, 'ConsultarPago answers 8 for an unknown operation');

  try {
    await client.ConsultarDeudaAsync({ idEmpresa: '9999', idCliente: customer });
    check(false, 'an unserved idEmpresa is a fault');
  } catch (error) {
    const fault = error.root && error.root.Envelope.Body.Fault;
    check(fault && fault.detail.falla.codigo === 'Client.UnknownEmpresa',
          'an unserved idEmpresa is a falla (Client.UnknownEmpresa)');
  }
  console.log(`NODE FLOW PASSED: ${checks} checks`);
}

main().catch((error) => {
  console.error('FAILED:', error && error.stack ? error.stack : error);
  process.exit(1);
});
