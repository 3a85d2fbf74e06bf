// The end-to-end flow through node-soap, with a client built only from the live
// /soap?wsdl: Eco -> AltaFactura -> ConsultarDeuda -> InformarPago (with idConsulta)
// -> replay -> ConsultarDeuda answers 2 -> ConsultarPago -> AnularPago (0, replay, 7)
// -> ConsultarPago ANULADO -> the invoice paid again -> AnularPago 10 and 8, plus a
// typed fault.
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

  // AnularPago: the payment above is reversed on its business day
  const reversal = {
    idEmpresa: '1234', idOperacion: payment.idOperacion, idCliente: customer, idFactura: invoice,
    importe: '980.10', moneda: 'ARS', fechaAnulacion: new Date().toISOString(),
    motivo: 'Desconocido por el pagador',
  };
  [answer] = await client.AnularPagoAsync(reversal);
  check(Number(answer.codigoRespuesta) === 0 && typeof answer.idAnulacion === 'string'
        && answer.idAnulacion.length > 0, 'AnularPago answers 0 with an idAnulacion');
  const reversalId = answer.idAnulacion;
  [answer] = await client.AnularPagoAsync(reversal);
  check(Number(answer.codigoRespuesta) === 0 && answer.idAnulacion === reversalId,
        'a replayed AnularPago gets the first answer and idAnulacion');
  [answer] = await client.AnularPagoAsync({ ...reversal, motivo: 'Otro motivo' });
  check(Number(answer.codigoRespuesta) === 7 && answer.idAnulacion === reversalId,
        'an AnularPago replay with another motivo answers 7 with the first idAnulacion');

  [answer] = await client.ConsultarPagoAsync({ idEmpresa: '1234', idOperacion: payment.idOperacion });
  check(Number(answer.codigoRespuesta) === 0 && answer.estado === 'ANULADO'
        && Number(answer.codigoRespuestaAviso) === 0 && answer.idRecibo === receipt,
        'ConsultarPago reports the payment ANULADO, its notice answered 0');
  [answer] = await client.ConsultarDeudaAsync({ idEmpresa: '1234', idCliente: customer });
  const listedAgain = answer.facturas ? [].concat(answer.facturas.factura) : [];
  check(Number(answer.codigoRespuesta) === 0 && listedAgain.length === 1
        && listedAgain[0].idFactura === invoice,
        'ConsultarDeuda lists the invoice again once its payment is reversed');

  const again = { ...payment, idOperacion: `NODE-B-${customer}`, idConsulta: undefined };
  [answer] = await client.InformarPagoAsync(again);
  check(Number(answer.codigoRespuesta) === 0 && answer.idRecibo && answer.idRecibo !== receipt,
        'a new idOperacion pays the invoice again');
  [answer] = await client.AnularPagoAsync({ ...reversal, idOperacion: again.idOperacion,
                                            importe: '980.00', motivo: undefined });
  check(Number(answer.codigoRespuesta) === 10 && answer.idAnulacion === undefined,
        'AnularPago with another importe answers 10, without idAnulacion');
  [answer] = await client.ConsultarPagoAsync({ idEmpresa: '1234', idOperacion: again.idOperacion });
  check(Number(answer.codigoRespuesta) === 0 && answer.estado === 'APLICADO',
        'the payment a refused reversal named stays APLICADO');

  [answer] = await client.AnularPagoAsync({ ...reversal, idOperacion: `NONE-${customer}` });
  check(Number(answer.codigoRespuesta) === 8 && typeof answer.idAnulacion === 'string'
        && answer.idAnulacion.length > 0,
        'AnularPago of an unknown operation answers 8, kept with an idAnulacion');

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
